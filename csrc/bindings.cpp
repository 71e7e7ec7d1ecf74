// Python bindings of the native module `edgekit._C`: the only file that includes pybind11.
//
// Each kernel is exposed twice over one function: `impl=""` takes the dispatched implementation, and a named
// `impl` runs exactly that one, so the tests can compare every ISA compiled on the machine with the numpy
// reference. Inputs are validated here (dtype, rank, layout) and the GIL is released around the kernel.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>

#include "edgekit/dispatch.h"
#include "edgekit/formats.h"

namespace py = pybind11;

namespace {

// Checks that `a` is a 2-D C-contiguous float32 array and returns (rows, cols); raises ValueError otherwise.
std::pair<int64_t, int64_t> check_matrix_f32(const py::array& a, const char* what) {
    if (!a.dtype().is(py::dtype::of<float>())) {
        throw py::value_error(std::string(what) + " must be float32, got " + std::string(py::str(a.dtype())));
    }
    if (a.ndim() != 2) {
        throw py::value_error(std::string(what) + " must be 2-D [M, K], got " + std::to_string(a.ndim()) + "-D");
    }
    if (!(a.flags() & py::array::c_style)) {
        throw py::value_error(std::string(what) + " must be C-contiguous (use np.ascontiguousarray)");
    }
    return {static_cast<int64_t>(a.shape(0)), static_cast<int64_t>(a.shape(1))};
}

py::tuple quant_row_q8(const py::array& x, int qmax, const std::string& impl) {
    const auto [m, k] = check_matrix_f32(x, "x");
    if (qmax < 1 || qmax > 127) {
        throw py::value_error("qmax must lie in 1..127, got " + std::to_string(qmax));
    }
    // resolve before allocating: unknown / unsupported impl → ValueError, EDGEKIT_KERNELS problems → RuntimeError
    const ek_quant_row_q8_fn fn = edgekit::quant_row_q8_impl(impl);

    py::array_t<int8_t> codes({m, k});
    py::array_t<float> scales(m);
    const float* src = static_cast<const float*>(x.data());
    int8_t* q = codes.mutable_data();
    float* s = scales.mutable_data();
    {
        py::gil_scoped_release nogil;
        fn(src, m, k, qmax, q, s);
    }
    return py::make_tuple(codes, scales);
}

py::dict cpu_features_dict() {
    py::dict d;
    for (const auto& [name, present] : edgekit::cpu_features()) d[py::str(name)] = present;
    return d;
}

py::dict build_info() {
    py::dict d;
    d["compiler"] = edgekit::compiler();
    d["isas"] = edgekit::compiled_isas();
    d["q8_row_qmax"] = EK_Q8_ROW_QMAX;
    d["q4_act_qmax"] = EK_Q4_ACT_QMAX;
    d["q4_block"] = EK_Q4_BLOCK;
    d["sizeof_block_q4_0"] = sizeof(ek_block_q4_0);
    d["sizeof_block_q4_1"] = sizeof(ek_block_q4_1);
#ifdef NDEBUG
    d["debug"] = false;
#else
    d["debug"] = true;
#endif
    return d;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
    m.doc() = "edgekit native kernels: CPU feature detection, dispatch, and the kernels themselves.";

    m.def("cpu_features", &cpu_features_dict,
          "CPU features relevant to the kernels, as {name: present} (x86 and aarch64 names both listed).");
    m.def("ops", &edgekit::ops, "Names of the kernel ops that have a dispatch table.");
    m.def("compiled", &edgekit::compiled, py::arg("op"), "Implementations of `op` compiled into this build.");
    m.def("implementations", &edgekit::implementations, py::arg("op"),
          "Implementations of `op` compiled into this build and supported by this CPU.");
    m.def("selected", &edgekit::selected, py::arg("op"),
          "The implementation the dispatched entry of `op` uses; honours EDGEKIT_KERNELS (RuntimeError when it "
          "names something unknown, not compiled or unsupported).");
    m.def("build_info", &build_info, "Compiler, compiled ISA families and the layout constants of formats.h.");

    m.def("quant_row_q8", &quant_row_q8, py::arg("x"), py::arg("qmax") = EK_Q8_ROW_QMAX, py::arg("impl") = "",
          "Per-row symmetric quantization of float32 [M, K] → (codes int8 [M, K], scales float32 [M]).\n\n"
          "Bit-identical to edgekit.quant.formats.quantize_rows_q8. `impl` empty uses the dispatched "
          "implementation, otherwise the named one (ValueError if it is not compiled or not supported).");
}
