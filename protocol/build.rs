//! Generates the protobuf messages (always) and the tonic service stubs (feature `grpc`)
//! from `proto/`, with protox: no system `protoc` is needed. Also writes the encoded
//! `FileDescriptorSet` (`matproof_descriptor.bin`), which the verifier node serves through
//! gRPC reflection (`wire::pb::FILE_DESCRIPTOR_SET`).

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["matproof/v1/matproof.proto"], ["proto"])?;
    let out_dir = std::path::PathBuf::from(std::env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    std::fs::write(out_dir.join("matproof_descriptor.bin"), fds.encode_to_vec())?;
    let grpc = std::env::var_os("CARGO_FEATURE_GRPC").is_some();
    // The matrix payloads decode as `bytes::Bytes`: a slice of the received buffer, not a
    // copy of it (one copy of `C` fewer on each side that receives it).
    tonic_prost_build::configure()
        .bytes(".matproof.v1.CRows.values")
        .bytes(".matproof.v1.InputRows.values")
        .build_server(grpc)
        .build_client(grpc)
        .compile_fds(fds)?;
    Ok(())
}
