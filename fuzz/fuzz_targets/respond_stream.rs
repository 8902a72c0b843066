//! A `Respond` stream through the session's reader (`matproof_protocol::session`), the
//! code a verifier node runs on every chunk a provider sends. The input is cut into
//! protobuf-encoded chunks (each a `u16le` length and that many bytes) or, with the first
//! byte odd, is a patch (`matproof_fuzz::patch`) of one valid chunk of a valid stream that
//! the session's writer made. Oracles: no panic; a stream the reader authenticates was
//! signed by the provider over exactly what it holds (only the writer's own stream, or
//! one cut into other chunks, can pass); unpatched, the valid stream is authenticated.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use matproof_fuzz::{patch, sample_opening};
use matproof_protocol::identity::Identity;
use matproof_protocol::ids::{JobId, MerkleRoot};
use matproof_protocol::session::{ReadProgress, ResponseExpectation, ResponseReader, ResponseWriter};
use matproof_protocol::wire::pb;
use prost::Message;

fn expectation() -> ResponseExpectation {
    ResponseExpectation {
        job_id: JobId([1; 32]),
        r_c: MerkleRoot([2; 32]),
        provider: provider().public_key(),
        c_rows: 3,
        row_len: 2,
        openings: 1,
        budget_bytes: 1 << 16,
    }
}

fn provider() -> &'static Identity {
    static P: OnceLock<Identity> = OnceLock::new();
    P.get_or_init(|| Identity::from_seed([7; 32]))
}

fn valid() -> &'static Vec<pb::RespondChunk> {
    static V: OnceLock<Vec<pb::RespondChunk>> = OnceLock::new();
    V.get_or_init(|| {
        let c: Vec<i32> = (0..6).map(|v| v * 1000 - 2500).collect();
        ResponseWriter::whole(expectation(), Some(&c), &[sample_opening()], provider(), 1)
    })
}

fn read(chunks: Vec<pb::RespondChunk>) -> bool {
    let mut reader = ResponseReader::new(expectation());
    for chunk in chunks {
        match reader.push(chunk) {
            Ok(ReadProgress::More) => {}
            Ok(ReadProgress::Ended) => break,
            Err(_) => return false,
        }
    }
    reader.finish().is_ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    if selector % 2 == 1 {
        let mut chunks = valid().clone();
        let which = usize::from(selector / 2) % chunks.len();
        let patched = patch(&chunks[which].encode_to_vec(), rest);
        let Ok(chunk) = pb::RespondChunk::decode(patched.as_slice()) else { return };
        let unchanged = chunk == chunks[which];
        chunks[which] = chunk;
        // A changed chunk breaks the signed digest (or the order): never authenticated.
        assert_eq!(read(chunks), unchanged, "a patched stream was authenticated");
        return;
    }
    let mut chunks = Vec::new();
    let mut input = rest;
    while input.len() >= 2 && chunks.len() < 64 {
        let len = usize::from(u16::from_le_bytes([input[0], input[1]])).min(input.len() - 2);
        let Ok(chunk) = pb::RespondChunk::decode(&input[2..2 + len]) else { return };
        chunks.push(chunk);
        input = &input[2 + len..];
    }
    let _ = read(chunks);
});
