//! Generates the protobuf messages (always) and the tonic service stubs (feature `grpc`)
//! from `proto/`, with protox: no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["matproof/v1/matproof.proto"], ["proto"])?;
    let grpc = std::env::var_os("CARGO_FEATURE_GRPC").is_some();
    tonic_prost_build::configure().build_server(grpc).build_client(grpc).compile_fds(fds)?;
    Ok(())
}
