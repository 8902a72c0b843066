//! An upload (`OpenJob`, `SubmitJob`) through the session's readers, the code a verifier
//! node and a sidecar run on every message a consumer sends: the first message through
//! `read_upload_head`, the rest through `InputsReader`. The input is cut into protobuf
//! messages (each a `u16le` length and that many bytes) or, with the first byte odd, is a
//! patch of one message of a valid upload. Oracles: no panic, no allocation beyond the
//! spec's matrices; an upload read to the end yields exactly the spec's shapes; unpatched,
//! the valid upload reads back as the writer's `A` and `B`.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use matproof_fuzz::{patch, sample_spec};
use matproof_protocol::identity::Identity;
use matproof_protocol::matrix::{MatrixI8, random_i8};
use matproof_protocol::session::{InputsReader, UploadWriter, read_upload_head, sign_spec};
use matproof_protocol::spec::JobSpec;
use matproof_protocol::wire::pb;
use prost::Message;

fn consumer() -> &'static Identity {
    static C: OnceLock<Identity> = OnceLock::new();
    C.get_or_init(|| Identity::from_seed([5; 32]))
}

fn job() -> &'static (JobSpec, MatrixI8, MatrixI8) {
    static J: OnceLock<(JobSpec, MatrixI8, MatrixI8)> = OnceLock::new();
    J.get_or_init(|| {
        let spec = JobSpec { consumer: consumer().public_key(), ..sample_spec() };
        let a = random_i8(spec.m as usize, spec.k as usize, 1).expect("A");
        let b = random_i8(spec.k as usize, spec.n as usize, 2).expect("B");
        (spec, a, b)
    })
}

fn valid() -> &'static Vec<pb::JobUpload> {
    static V: OnceLock<Vec<pb::JobUpload>> = OnceLock::new();
    V.get_or_init(|| {
        let (spec, a, b) = job();
        let signature = sign_spec(spec, consumer());
        UploadWriter::new(spec, &signature, Some((Arc::new(a.clone()), Arc::new(b.clone())))).collect()
    })
}

/// `Some((A, B))` when the whole upload reads.
fn read(messages: Vec<pb::JobUpload>) -> Option<(MatrixI8, MatrixI8)> {
    let mut messages = messages.into_iter();
    let head = read_upload_head(messages.next()?).ok()?;
    let mut reader = InputsReader::new(&head);
    for message in messages {
        reader.push(message).ok()?;
    }
    let (a, b) = reader.finish().ok()?;
    assert_eq!((a.rows() as u64, a.cols() as u64), (head.spec.m, head.spec.k));
    assert_eq!((b.rows() as u64, b.cols() as u64), (head.spec.k, head.spec.n));
    Some((a, b))
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    if selector % 2 == 1 {
        let mut messages = valid().clone();
        let which = usize::from(selector / 2) % messages.len();
        let patched = patch(&messages[which].encode_to_vec(), rest);
        let Ok(message) = pb::JobUpload::decode(patched.as_slice()) else { return };
        let unchanged = message == messages[which];
        messages[which] = message;
        let read_back = read(messages);
        if unchanged {
            let (_, a, b) = job();
            assert_eq!(read_back, Some((a.clone(), b.clone())), "the valid upload did not read back");
        }
        return;
    }
    let mut messages = Vec::new();
    let mut input = rest;
    while input.len() >= 2 && messages.len() < 64 {
        let len = usize::from(u16::from_le_bytes([input[0], input[1]])).min(input.len() - 2);
        let Ok(message) = pb::JobUpload::decode(&input[2..2 + len]) else { return };
        messages.push(message);
        input = &input[2 + len..];
    }
    let _ = read(messages);
});
