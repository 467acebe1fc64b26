// PrepareHashTests — the in-tree SHA-256 against FIPS 180-4 test vectors and the tokenizer hash.
import Engine
import Foundation
import Testing
import TuneKit

@Suite struct PrepareHashTests {
    @Test func sha256Vectors() {
        #expect(SHA256.hash(Array("".utf8)).hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hash(Array("abc".utf8)).hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)).hex
            == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        // Incremental updates across block boundaries equal one-shot hashing.
        let data = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var h = SHA256()
        for chunk in stride(from: 0, to: data.count, by: 37) { h.update(data[chunk..<min(data.count, chunk + 37)]) }
        #expect(h.finalize() == SHA256.hash(data))
    }

    @Test func tokenizerHashIsStableAndDistinguishes() throws {
        let a = PrepareFixtures.tiny
        #expect(a.sha256.count == 64)
        #expect(DatasetTokenizer(a.tokenizer).sha256 == DatasetTokenizer(a.tokenizer).sha256)
        #expect(DatasetTokenizer(a.tokenizer).sha256 != a.sha256)   // public-API hash vs GGUF vocab+merges hash
    }
}
