// edgekit_tokenize TOKENIZER.json STRINGS: the C++ tokenizer (tokenizer.h) on a file of strings, for the cross
// builds' parity check under qemu (tests/cross/test_tokenizer_arm.py compares the output with Hugging Face
// `tokenizers`). STRINGS holds records "<byte length>\n<bytes>"; each string's ids go to stdout as one line of
// space-separated numbers. Exit 1 with the error on stderr when the tokenizer or a string is refused.
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "edgekit/tokenizer.h"

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s TOKENIZER.json STRINGS\n", argv[0]);
        return 2;
    }
    try {
        std::ifstream tf(argv[1], std::ios::binary), sf(argv[2], std::ios::binary);
        if (!tf || !sf) throw std::runtime_error("cannot open the input files");
        std::stringstream json, all;
        json << tf.rdbuf();
        all << sf.rdbuf();
        const std::unique_ptr<edgekit::Tokenizer> tok = edgekit::Tokenizer::from_json(json.str(), argv[1]);
        const std::string data = all.str();
        std::string out;
        for (size_t at = 0; at < data.size();) {
            const size_t nl = data.find('\n', at);
            if (nl == std::string::npos) throw std::runtime_error("truncated record at byte " + std::to_string(at));
            const size_t len = std::stoul(data.substr(at, nl - at));
            if (len > data.size() - nl - 1) throw std::runtime_error("record longer than the file");
            const std::vector<int32_t> ids = tok->encode(data.substr(nl + 1, len), false);
            for (size_t i = 0; i < ids.size(); ++i) {
                if (i) out.push_back(' ');
                out += std::to_string(ids[i]);
            }
            out.push_back('\n');
            at = nl + 1 + len;
        }
        std::fwrite(out.data(), 1, out.size(), stdout);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
