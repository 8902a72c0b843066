#!/usr/bin/env python3
"""Checks a running verifier node from outside Rust, with grpcio: server reflection lists
the services (it must include matproof.v1.Verifier and grpc.health.v1.Health, and can
describe matproof.v1.Verifier's methods), and Health/Check answers SERVING for the node
and for matproof.v1.Verifier.

Usage: grpc_reflection_check.py HOST:PORT
Needs: grpcio, grpcio-reflection, grpcio-health-checking (CI installs them into
target/grpc-venv).
"""

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from google.protobuf import descriptor_pb2

REQUIRED = {"matproof.v1.Verifier", "grpc.health.v1.Health"}


def reflect(channel, request):
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = list(stub.ServerReflectionInfo(iter([request]), timeout=10))
    if len(responses) != 1:
        raise SystemExit(f"reflection: {len(responses)} responses, expected 1")
    response = responses[0]
    if response.HasField("error_response"):
        raise SystemExit(f"reflection error: {response.error_response.error_message}")
    return response


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    target = sys.argv[1].removeprefix("http://")
    with grpc.insecure_channel(target) as channel:
        grpc.channel_ready_future(channel).result(timeout=15)

        listed = reflect(channel, reflection_pb2.ServerReflectionRequest(list_services=""))
        services = {s.name for s in listed.list_services_response.service}
        print("reflection lists:", ", ".join(sorted(services)))
        missing = REQUIRED - services
        if missing:
            raise SystemExit(f"missing services: {', '.join(sorted(missing))}")

        described = reflect(
            channel, reflection_pb2.ServerReflectionRequest(file_containing_symbol="matproof.v1.Verifier")
        )
        methods = set()
        for raw in described.file_descriptor_response.file_descriptor_proto:
            fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
            for service in fd.service:
                if f"{fd.package}.{service.name}" == "matproof.v1.Verifier":
                    methods.update(m.name for m in service.method)
        expected = {"OpenJob", "Commit", "Respond", "GetReceipt", "GetJobStatus"}
        if not expected <= methods:
            raise SystemExit(f"matproof.v1.Verifier methods {sorted(methods)}, expected {sorted(expected)}")
        print("matproof.v1.Verifier methods:", ", ".join(sorted(methods)))

        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "matproof.v1.Verifier"):
            status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status
            name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
            print(f"health {service or '(server)'}: {name}")
            if status != health_pb2.HealthCheckResponse.SERVING:
                raise SystemExit(f"health of {service or 'the server'} is {name}, expected SERVING")
    print("grpc reflection/health check: ok")


if __name__ == "__main__":
    main()
