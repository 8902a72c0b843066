#!/usr/bin/env python3
"""Peer figure for `matproof bench prove --tile NxN --k N --json` (whole-product mode):
EZKL proving the same integer product C = A·B.

What it compares against: matproof proves, with Groth16 over BN254, that C = A·B for
A: n×n int8 (public) and B: n×n int8 (private weights). Here the same statement goes
through EZKL (Halo2/PLONKish with KZG over BN254, not Groth16): an ONNX model with a
single MatMul node, input X = A (public), weight W = B as an initializer with
param_visibility = "private", output C public, input_scale = param_scale = 0 so every
value is the exact integer. logrows comes from `calibrate_settings(target="resources",
scales=[0])` (gen_settings only echoes PyRunArgs' default logrows = 17, whatever n is;
pass --no-calibrate to keep that). Everything else is EZKL's default (including its Freivalds
einsum check: `disable_freivalds` is left at whatever PyRunArgs() gives, and printed).
The SRS is generated locally with `ezkl.gen_srs` (test-only, never downloaded).

Run by hand (not in CI; it is slow and needs the ezkl wheel), on an otherwise idle
machine, in the same session as `matproof bench prove --tile NxN --k N --json`:

    python3 -m venv target/ezkl-venv
    target/ezkl-venv/bin/pip install ezkl==23.0.5 onnx numpy
    target/ezkl-venv/bin/python benches/ezkl_compare.py --n 64 --runs 3 --workdir target/ezkl-work

Prints one JSON line:
    {"bench": "ezkl", "n", "logrows", "setup_s", "prove_s" (median of --runs),
     "verify_ms" (median of --verify-runs), "proof_bytes", "proof_file_bytes",
     "pk_bytes", "vk_bytes", "srs_bytes", "ezkl", "settings": {...}, "output_exact", ...}
Progress notes go to stderr, so stdout holds only that JSON line.

API notes (ezkl 23.0.5, by introspection): gen_settings(model, output, py_run_args),
compile_circuit(model, compiled_circuit, settings_path), gen_srs(srs_path, logrows),
setup(model, vk_path, pk_path, srs_path, witness_path, disable_selector_compression),
gen_witness(data, model, output, vk_path, srs_path) -> dict,
prove(witness, model, pk_path, proof_path, srs_path),
verify(proof_path, settings_path, vk_path, srs_path, reduced_srs) -> bool.
In 23.0.5 these are synchronous, but calibrate_settings/get_srs were async in earlier
releases, so every call goes through `_call`, which awaits a returned coroutine if any.
"""
import argparse
import asyncio
import inspect
import json
import os
import statistics
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import ezkl


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def _call(fn, *args, **kwargs):
    """Call an ezkl binding; if it returned an awaitable (async in some versions), run it."""
    res = fn(*args, **kwargs)
    if inspect.isawaitable(res):
        res = asyncio.run(_await(res))
    return res


async def _await(aw):
    return await aw


def build_model(path, w, batch_dim):
    n = w.shape[0]
    x_shape = [1, n, n] if batch_dim else [n, n]
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, x_shape)
    w_init = numpy_helper.from_array(w.astype(np.float32), name="W")
    node = helper.make_node("MatMul", ["X", "W"], ["Y"])
    graph = helper.make_graph([node], "matmul", [x], [y], initializer=[w_init])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # conservative: what tract (EZKL's ONNX loader) is known to read
    onnx.checker.check_model(model)
    onnx.save(model, path)


def fsize(p):
    return os.path.getsize(p) if os.path.exists(p) else None


def run_args_dict(ra):
    out = {}
    for k in dir(ra):
        if k.startswith("_"):
            continue
        v = getattr(ra, k)
        if callable(v):
            continue
        out[k] = v if isinstance(v, (int, float, bool, str)) or v is None else str(v)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3, help="timed prove runs (median reported)")
    ap.add_argument("--verify-runs", type=int, default=5, help="timed verify runs (median)")
    ap.add_argument("--workdir", default="target/ezkl-work")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-batch-dim", action="store_true",
                    help="X as [n, n] instead of [1, n, n]")
    ap.add_argument("--no-calibrate", action="store_true",
                    help="keep gen_settings' logrows (the PyRunArgs default, 17) instead of "
                         "calibrate_settings(target='resources', scales=[0])")
    ap.add_argument("--mock", action="store_true",
                    help="also run ezkl.mock (constraint check without proving; slow for big n)")
    args = ap.parse_args()
    n = args.n
    wd = os.path.join(args.workdir, f"n{n}")
    os.makedirs(wd, exist_ok=True)
    p = lambda name: os.path.join(wd, name)  # noqa: E731
    model_path, data_path, settings_path = p("model.onnx"), p("input.json"), p("settings.json")
    compiled_path, witness_path = p("model.compiled"), p("witness.json")
    pk_path, vk_path, proof_path = p("pk.key"), p("vk.key"), p("proof.json")

    rng = np.random.default_rng(args.seed)
    a = rng.integers(-128, 128, size=(n, n), dtype=np.int8)
    b = rng.integers(-128, 128, size=(n, n), dtype=np.int8)
    c = a.astype(np.int64) @ b.astype(np.int64)

    build_model(model_path, b, batch_dim=not args.no_batch_dim)
    with open(data_path, "w") as f:
        json.dump({"input_data": [[int(v) for v in a.reshape(-1)]]}, f)

    # --- settings: scales 0, W private, everything else EZKL's default ------------------
    ra = ezkl.PyRunArgs()
    defaults = run_args_dict(ra)
    ra.input_scale = 0
    ra.param_scale = 0
    ra.param_visibility = "private"
    ra.input_visibility = "public"
    ra.output_visibility = "public"
    assert _call(ezkl.gen_settings, model_path, settings_path, py_run_args=ra)
    with open(settings_path) as f:
        gen_logrows = json.load(f)["run_args"]["logrows"]
    log(f"gen_settings: logrows={gen_logrows} (this is just PyRunArgs().logrows echoed back)")
    # gen_settings does not size the circuit: it writes back whatever PyRunArgs.logrows was
    # (default 17) whatever n is. calibrate_settings is EZKL's own way to get the smallest
    # logrows that fits the rows and range-check tables; scales=[0] keeps the integers exact.
    if not args.no_calibrate:
        assert _call(ezkl.calibrate_settings, data_path, model_path, settings_path,
                     "resources", scales=[0])
    with open(settings_path) as f:
        settings = json.load(f)
    run_args = settings["run_args"]
    # Scales must stay 0 so the circuit's values are the exact integers.
    assert run_args["input_scale"] == 0 and run_args["param_scale"] == 0, run_args
    assert run_args["param_visibility"] == "Private", run_args
    logrows = run_args["logrows"]
    log(f"settings: logrows={logrows} num_rows={settings.get('num_rows')} "
        f"lookup_range={run_args.get('lookup_range')}")

    assert _call(ezkl.compile_circuit, model_path, compiled_path, settings_path)

    srs_path = p(f"kzg{logrows}.srs")
    if not os.path.exists(srs_path):
        t = time.perf_counter()
        _call(ezkl.gen_srs, srs_path, logrows)
        log(f"gen_srs(logrows={logrows}): {time.perf_counter() - t:.2f}s (local, test-only)")

    # --- witness + exactness check -------------------------------------------------------
    t = time.perf_counter()
    wit = _call(ezkl.gen_witness, data_path, compiled_path, witness_path, vk_path=None,
                srs_path=None)
    witness_s = time.perf_counter() - t
    if not isinstance(wit, dict):
        with open(witness_path) as f:
            wit = json.load(f)
    out_felts = wit["outputs"][0]
    got = np.array([ezkl.felt_to_int(x) for x in out_felts], dtype=np.int64)
    output_exact = got.size == c.size and bool(np.array_equal(got, c.reshape(-1)))
    log(f"witness output == numpy int64 A@B: {output_exact}")
    assert output_exact, "EZKL witness output differs from the exact integer product"

    if args.mock:
        assert _call(ezkl.mock, witness_path, compiled_path)
        log("mock: ok")

    # --- setup ---------------------------------------------------------------------------
    t = time.perf_counter()
    assert _call(ezkl.setup, compiled_path, vk_path, pk_path, srs_path=srs_path)
    setup_s = time.perf_counter() - t
    log(f"setup: {setup_s:.3f}s")

    # --- prove ---------------------------------------------------------------------------
    prove_times = []
    for i in range(args.runs):
        t = time.perf_counter()
        res = _call(ezkl.prove, witness_path, compiled_path, pk_path, proof_path,
                    srs_path=srs_path)
        prove_times.append(time.perf_counter() - t)
        assert res, "prove failed"
        log(f"prove run {i + 1}: {prove_times[-1]:.3f}s")

    # --- verify --------------------------------------------------------------------------
    verify_times = []
    for _ in range(args.verify_runs):
        t = time.perf_counter()
        ok = _call(ezkl.verify, proof_path, settings_path, vk_path, srs_path=srs_path)
        verify_times.append(time.perf_counter() - t)
        assert ok is True, "verify failed"

    # proof_bytes: the raw proof transcript = the proof JSON's "proof" field (a list of
    # byte values in this version; "hex_proof" is the same bytes as 0x-hex), i.e. what a
    # verifier actually consumes, without the public instances or JSON framing.
    # proof_file_bytes: size of the proof JSON file EZKL writes (instances, hex copy, etc.).
    with open(proof_path) as f:
        proof_json = json.load(f)
    raw = proof_json.get("proof")
    if isinstance(raw, list):
        proof_bytes = len(raw)
    elif isinstance(raw, str):
        proof_bytes = len(bytes.fromhex(raw[2:] if raw.startswith("0x") else raw))
    else:
        hx = proof_json.get("hex_proof") or ""
        proof_bytes = len(bytes.fromhex(hx[2:] if hx.startswith("0x") else hx)) or None
    hx = proof_json.get("hex_proof")
    if isinstance(hx, str) and proof_bytes is not None:
        assert len(bytes.fromhex(hx[2:] if hx.startswith("0x") else hx)) == proof_bytes

    freivalds_like = {k: v for k, v in run_args.items()
                      if "freivald" in k.lower() or "matmul" in k.lower() or "einsum" in k.lower()}
    result = {
        "bench": "ezkl",
        "n": n,
        "logrows": logrows,
        "setup_s": round(setup_s, 4),
        "prove_s": round(statistics.median(prove_times), 4),
        "prove_runs_s": [round(x, 4) for x in prove_times],
        "witness_s": round(witness_s, 4),
        "verify_ms": round(statistics.median(verify_times) * 1e3, 3),
        "proof_bytes": proof_bytes,
        "proof_file_bytes": fsize(proof_path),
        "pk_bytes": fsize(pk_path),
        "vk_bytes": fsize(vk_path),
        "srs_bytes": fsize(srs_path),
        "ezkl": getattr(ezkl, "__version__", None),
        "output_exact": output_exact,
        "settings": {
            "input_scale": run_args.get("input_scale"),
            "param_scale": run_args.get("param_scale"),
            "input_visibility": run_args.get("input_visibility"),
            "param_visibility": run_args.get("param_visibility"),
            "output_visibility": run_args.get("output_visibility"),
            "check_mode": run_args.get("check_mode"),
            "lookup_range": run_args.get("lookup_range"),
            "logrows": logrows,
            "logrows_source": "gen_settings" if args.no_calibrate else
                              "calibrate_settings(resources, scales=[0])",
            "gen_settings_logrows": gen_logrows,
            "num_rows": settings.get("num_rows"),
            "decomp_base": run_args.get("decomp_base"),
            "decomp_legs": run_args.get("decomp_legs"),
            "required_range_checks": settings.get("required_range_checks"),
            **freivalds_like,
            "disable_freivalds_default": defaults.get("disable_freivalds"),
            "einsum_params": settings.get("einsum_params"),
        },
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
