#!/usr/bin/env python3
"""Compare cgnet's emitted code with ONNX Runtime and ncnn on the same network.

Needs only: pip install onnx onnxruntime ncnn pnnx numpy safetensors
(no PyTorch). Builds the network as an ONNX graph from a cgnet spec (JSON) and
a .safetensors file with the authors' keys, converts it for ncnn with the
`pnnx` command, checks every engine's logits against ours, and times ours
(emitted C through ctypes, and the Rust backend through `cgnetc bench`), ncnn
and ONNX Runtime in alternation on an image-like input (uniform 0..255 minus
the Cityscapes mean): each round times every engine at every thread count in
turn, so that ratios and speed-ups compare blocks from the same rounds. Prints
a markdown table.

    python3 bench/compare.py --spec S.json --weights W.safetensors \
        --height 512 --width 1024 --threads 1 2 --rounds 7

With --isa avx2 it compares on AVX2 + FMA only, as on an AVX2-only CPU, on a
CPU that has AVX-512: ours run c-avx2 / rust-avx2, and the ncnn module must
have been built without AVX-512 code (the PyPI wheel dispatches to it at run
time, and nothing can turn that off), which the script checks with objdump:

    EXTRA_CMAKE_ARGS="-DNCNN_VULKAN=OFF -DNCNN_AVX512=OFF" pip wheel ncnn \
        --no-binary ncnn --no-build-isolation --no-deps -w wheels/

ONNX Runtime still chooses its kernels at run time (AVX-512 where there is).

With --gpu it compares the GPU paths instead: ours (`cgnetc run/bench --target
gpu`, WGSL through wgpu) and ncnn's Vulkan path (fp16 off), both on the same
Vulkan device (lavapipe on a machine without a GPU), outputs checked against
ONNX Runtime on the CPU.
"""
import argparse
import ctypes
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CITYSCAPES_MEAN = np.array([72.39239876, 82.90891754, 73.15835921], dtype=np.float32)


def normalise_key(key):
    if key.startswith("module."):
        key = key[len("module."):]
    if key.startswith("classifier.conv."):
        key = "classifier.0.conv." + key[len("classifier.conv."):]
    return key


class Builder:
    """Emits the authors' Context_Guided_Network as ONNX nodes."""

    def __init__(self, weights, spec):
        self.w = {normalise_key(k): v for k, v in weights.items() if not k.endswith("num_batches_tracked")}
        self.spec = spec
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, hint):
        self.n += 1
        return f"{hint}_{self.n}"

    def init(self, key, array=None, dtype=np.float32):
        name = self.name(key.replace(".", "_"))
        value = self.w[key] if array is None else array
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=dtype), name))
        return name

    def op(self, op, inputs, **attrs):
        out = self.name(op)
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def conv(self, x, key, stride=1, dilation=1, groups=1):
        w = self.w[key]
        k = w.shape[2]
        pad = dilation * (k - 1) // 2
        return self.op("Conv", [x, self.init(key)], kernel_shape=[k, k], strides=[stride, stride],
                       dilations=[dilation, dilation], pads=[pad] * 4, group=groups)

    def bn(self, x, prefix):
        names = [self.init(f"{prefix}.{p}") for p in ("weight", "bias", "running_mean", "running_var")]
        return self.op("BatchNormalization", [x] + names, epsilon=1e-3)

    def act(self, x, prefix):
        if self.spec["activation"] == "relu":
            return self.op("Relu", [x])
        slope = self.w[f"{prefix}.weight"].reshape(-1, 1, 1)
        return self.op("PRelu", [x, self.init(f"{prefix}.weight", slope)])

    def bn_act(self, x, prefix):
        return self.act(self.bn(x, f"{prefix}.bn"), f"{prefix}.act")

    def conv_bn_act(self, x, prefix, stride=1):
        return self.bn_act(self.conv(x, f"{prefix}.conv.weight", stride), prefix)

    def pool(self, x):
        return self.op("AveragePool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)

    def f_glo(self, x, prefix):
        if not self.spec.get("global_context", True):
            return x
        y = self.op("GlobalAveragePool", [x])
        y = self.op("Flatten", [y], axis=1)
        y = self.op("Gemm", [y, self.init(f"{prefix}.F_glo.fc.0.weight"), self.init(f"{prefix}.F_glo.fc.0.bias")], transB=1)
        y = self.op("Relu", [y])
        y = self.op("Gemm", [y, self.init(f"{prefix}.F_glo.fc.2.weight"), self.init(f"{prefix}.F_glo.fc.2.bias")], transB=1)
        y = self.op("Sigmoid", [y])
        y = self.op("Unsqueeze", [y, self.init(f"{prefix}.axes", np.array([2, 3]), dtype=np.int64)])
        return self.op("Mul", [x, y])

    def joint(self, x, prefix, dilation):
        c = self.w[f"{prefix}.F_loc.conv.weight"].shape[0]
        loc = self.conv(x, f"{prefix}.F_loc.conv.weight", groups=c)
        sur = self.conv(x, f"{prefix}.F_sur.conv.weight", dilation=dilation, groups=c)
        return self.op("Concat", [loc, sur], axis=1)

    def down(self, x, prefix, dilation):
        out = self.conv_bn_act(x, f"{prefix}.conv1x1", stride=2)
        joint = self.bn_act(self.joint(out, prefix, dilation), prefix)
        return self.f_glo(self.conv(joint, f"{prefix}.reduce.conv.weight"), prefix)

    def block(self, x, prefix, dilation):
        out = self.conv_bn_act(x, f"{prefix}.conv1x1")
        joint = self.bn_act(self.joint(out, prefix, dilation), f"{prefix}.bn_prelu")
        residual = self.spec["residual"]
        if residual == "global":
            return self.op("Add", [x, self.f_glo(joint, prefix)])
        if residual == "local":
            return self.f_glo(self.op("Add", [x, joint]), prefix)
        return self.f_glo(joint, prefix)

    def network(self):
        s = self.spec
        x = "input"
        out = self.conv_bn_act(x, "level1_0", stride=2)
        for i in range(1, s.get("stage1", {}).get("convs", 3)):
            out = self.conv_bn_act(out, f"level1_{i}")
        parts = [out]
        if s.get("input_injection", True):
            parts.append(self.pool(x))
        cat = self.bn_act(self.op("Concat", parts, axis=1), "b1")
        d2 = s.get("stage2", {}).get("dilation", 2)
        down2 = self.down(cat, "level2_0", d2)
        out2 = down2
        for i in range(s["stage2_blocks"] - 1):
            out2 = self.block(out2, f"level2.{i}", d2)
        parts = [out2, down2]
        if s.get("input_injection", True):
            parts.append(self.pool(self.pool(x)))
        cat2 = self.bn_act(self.op("Concat", parts, axis=1), "bn_prelu_2")
        d3 = s.get("stage3", {}).get("dilation", 4)
        down3 = self.down(cat2, "level3_0", d3)
        out3 = down3
        for i in range(s["stage3_blocks"] - 1):
            out3 = self.block(out3, f"level3.{i}", d3)
        cat3 = self.bn_act(self.op("Concat", [down3, out3], axis=1), "bn_prelu_3")
        return self.conv(cat3, "classifier.0.conv.weight")


def build_onnx(spec, weights, path):
    b = Builder(weights, spec)
    logits = b.network()
    h, w = spec["height"], spec["width"]
    graph = helper.make_graph(
        b.nodes, "cgnet",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, h, w])],
        [helper.make_tensor_value_info(logits, TensorProto.FLOAT, [1, spec["classes"], -(-h // 8), -(-w // 8)])],
        b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return logits


def cpu_flags():
    """This CPU's feature flags (from /proc/cpuinfo; empty elsewhere)."""
    try:
        return next(set(l.split(":", 1)[1].split()) for l in open("/proc/cpuinfo") if l.startswith("flags"))
    except (OSError, StopIteration):
        return set()


def ncnn_has_avx512(ncnn):
    """Whether the ncnn extension module holds AVX-512 code (an instruction on a
    zmm register), by objdump; None where it cannot tell."""
    import glob
    modules = glob.glob(os.path.join(os.path.dirname(ncnn.__file__), "ncnn*.so"))
    if not modules or not shutil.which("objdump"):
        return None
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", modules[0]], capture_output=True, text=True)
    if out.returncode != 0:
        return None
    return "%zmm" in out.stdout


def median_ms(samples):
    return statistics.median(samples) * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--height", type=int)
    ap.add_argument("--width", type=int)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--cgnetc", default=os.path.join(ROOT, "target", "release", "cgnetc"))
    ap.add_argument("--gpu", action="store_true", help="compare the GPU paths (ours on wgpu, ncnn on Vulkan)")
    ap.add_argument("--isa", choices=["widest", "avx2"], default="widest",
                    help="ours on the CPU's widest vector set (default), or on AVX2 + FMA only: the AVX2-only "
                         "comparison on an AVX-512 CPU, against an ncnn built without AVX-512 (checked, see --help)")
    args = ap.parse_args()

    spec = json.load(open(args.spec))
    spec["height"] = args.height or spec["height"]
    spec["width"] = args.width or spec["width"]
    spec.pop("parameters", None)
    spec["name"] = "bench"
    h, w = spec["height"], spec["width"]
    weights = load_file(args.weights)
    work = tempfile.mkdtemp(prefix="cgnet-bench-")
    spec_path = os.path.join(work, "spec.json")
    json.dump(spec, open(spec_path, "w"))

    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, size=(1, 3, h, w)).astype(np.float32) - CITYSCAPES_MEAN.reshape(1, 3, 1, 1)

    # ONNX + ONNX Runtime.
    onnx_path = os.path.join(work, "cgnet.onnx")
    out_name = build_onnx(spec, weights, onnx_path)
    import onnxruntime as ort

    # ncnn through pnnx.
    pnnx = shutil.which("pnnx") or os.path.join(os.path.dirname(sys.executable), "pnnx")
    subprocess.run([pnnx, onnx_path, "fp16=0", f"inputshape=[1,3,{h},{w}]"], cwd=work, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import ncnn
    param = os.path.join(work, "cgnet.ncnn.param")
    binf = os.path.join(work, "cgnet.ncnn.bin")

    if args.gpu:
        return gpu_main(args, spec, spec_path, onnx_path, param, binf, image, work)

    # Ours: the widest vector set of this CPU, as ncnn and ONNX Runtime choose
    # theirs, or AVX2 against an ncnn without AVX-512 code.
    flags = cpu_flags()
    wide = "avx512f" in flags and args.isa == "widest"
    ncnn_avx512 = ncnn_has_avx512(ncnn)
    if args.isa == "avx2" and ncnn_avx512 is not False:
        sys.exit("--isa avx2 needs an ncnn module without AVX-512 code (objdump finds " +
                 ("some" if ncnn_avx512 else "nothing it can read; is binutils there?") +
                 f" in {ncnn.__file__}): build it with -DNCNN_AVX512=OFF, see --help")
    c_target, rust_target = ("c-avx512", "rust-avx512") if wide else ("c-avx2", "rust-avx2")
    c_flags = ["-mavx512f", "-mavx2", "-mfma"] if wide else ["-mavx2", "-mfma"]
    key_c, key_rust = f"ours C ({c_target})", f"ours Rust ({rust_target})"
    # Emitted C as a shared library, called through ctypes.
    subprocess.run([args.cgnetc, "build", "--model", spec_path, "--weights", args.weights, "--target", c_target,
                    "--out", os.path.join(work, "c")], check=True, stdout=subprocess.DEVNULL)
    cdir = os.path.join(work, "c")
    lib_path = os.path.join(cdir, "libbench.so")
    pool_src = os.path.join(cdir, "pool.c")
    with open(pool_src, "w") as f:
        f.write('#define _POSIX_C_SOURCE 200112L\n#include "cgnet_pthread_pool.h"\n#include "bench.h"\n'
                '/* One pool per thread count, kept: the rounds alternate between thread counts. */\n'
                'static cgnet_pool pools[8]; static size_t sizes[8], npools; static bench_parallel_for pf;\n'
                'int bench_set_threads(size_t n) {\n'
                '    size_t i;\n'
                '    for (i = 0; i < npools && sizes[i] != n; i++) {}\n'
                '    if (i == npools) {\n'
                '        if (npools == 8 || cgnet_pool_init(&pools[i], n) != 0) return -1;\n'
                '        sizes[i] = n; npools++;\n'
                '    }\n'
                '    pf.ctx = &pools[i]; pf.threads = n; pf.run = cgnet_pool_run;\n'
                '    return 0;\n}\n'
                'int bench_run_threads(const float *i, float *o, void *a) { return bench_run_parallel(i, o, a, &pf); }\n')
    subprocess.run(["cc", "-std=c99", "-O3", *c_flags, "-shared", "-fPIC", "-o", lib_path, "bench.c", "bench_weights.c", "pool.c",
                    "-lm", "-lpthread"], cwd=cdir, check=True)
    lib = ctypes.CDLL(lib_path)
    lib.bench_arena_bytes.restype = ctypes.c_size_t
    arena = np.zeros(lib.bench_arena_bytes() // 4 + 16, dtype=np.float32)
    offset = (-arena.ctypes.data % 64) // 4
    arena_ptr = ctypes.c_void_p(arena.ctypes.data + offset * 4)
    ref = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).run(None, {"input": image})[0]
    ours = np.zeros_like(ref)
    fp = ctypes.POINTER(ctypes.c_float)

    def run_c():
        status = lib.bench_run_threads(image.ctypes.data_as(fp), ours.ctypes.data_as(fp), arena_ptr)
        assert status == 0

    # Every thread count's engines are made up front, and each round times them
    # all, thread count after thread count: the speed-up compares blocks run
    # minutes apart at most, not one phase of the run with another (on a
    # shared machine the load drifts between phases).
    engines, errs = {}, {}
    for threads in args.threads:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
        net = ncnn.Net()
        net.opt.num_threads = threads
        net.opt.use_fp16_packed = False
        net.opt.use_fp16_storage = False
        net.opt.use_fp16_arithmetic = False
        net.load_param(param)
        net.load_model(binf)

        def run_ncnn(net=net):
            ex = net.create_extractor()
            ex.input("in0", ncnn.Mat(image[0]).clone())
            _, out = ex.extract("out0")
            return np.array(out)

        def run_ort(sess=sess):
            return sess.run(None, {"input": image})[0]

        engines[threads] = (run_ncnn, run_ort)
        # Accuracy against ONNX Runtime (which follows the ONNX graph exactly).
        assert lib.bench_set_threads(ctypes.c_size_t(threads)) == 0
        run_c()
        scale = max(1.0, float(np.abs(ref).max()))
        errs[threads] = {"ours (C)": float(np.abs(ours - ref).max()) / scale,
                         "ncnn": float(np.abs(run_ncnn().reshape(ref.shape) - ref).max()) / scale}
        for _ in range(2):
            run_c(); run_ncnn(); run_ort()
    times = {(t, key): [] for t in args.threads for key in (key_c, "ncnn", "ONNX Runtime", key_rust)}

    def run_rust_block(threads):
        # The Rust backend runs in its own process (cgnetc bench): two timed
        # runs, as the other engines' blocks have, which it prints as the
        # min and max (its "median" of two is the slower one).
        out = subprocess.run([args.cgnetc, "bench", "--model", spec_path, "--weights", args.weights, "--target", rust_target,
                              "--threads", str(threads), "--iters", "2"], check=True, capture_output=True, text=True).stdout
        fastest, slowest = out.split("(min ")[1].split(")")[0].split(", max ")
        times[threads, key_rust] += [float(fastest) / 1e3, float(slowest) / 1e3]

    # Engines alternate in short blocks with a pause between them, so that one
    # engine's idle threads (ORT and OpenMP spin after their work) do not
    # steal the next engine's cores.
    for _ in range(args.rounds):
        for threads in args.threads:
            assert lib.bench_set_threads(ctypes.c_size_t(threads)) == 0
            run_ncnn, run_ort = engines[threads]
            for key, fn in ((key_c, run_c), ("ncnn", run_ncnn), ("ONNX Runtime", run_ort)):
                time.sleep(0.3)
                for _ in range(2):
                    t = time.perf_counter(); fn(); times[threads, key].append(time.perf_counter() - t)
            time.sleep(0.3)
            run_rust_block(threads)
    rows = []
    for threads in args.threads:
        med = {key: median_ms(v) for (t, key), v in times.items() if t == threads}
        rows.append((threads, med, errs[threads]))

    cpu = platform.processor() or platform.machine()
    try:
        cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][0]
    except (OSError, IndexError):
        pass
    best = "AVX-512" if "avx512f" in flags else "AVX2 + FMA" if {"avx2", "fma"} <= flags else "SSE"
    ncnn_isa = {True: "its module has AVX-512 code", False: "its module has no AVX-512 code",
                None: "objdump could not tell whether its module has AVX-512 code"}[ncnn_avx512]
    print(f"\nCGNet {spec['classes']} classes M{spec['stage2_blocks']}N{spec['stage3_blocks']} at {h}x{w}, "
          f"image-like input (uniform 0..255 minus the Cityscapes mean), {cpu}, {args.rounds} rounds; median ms")
    print(f"ISA: ours {c_target} and {rust_target} ({'AVX-512F' if wide else 'AVX2 + FMA'}); ncnn and ONNX Runtime "
          f"choose at run time, and this CPU's best is {best}; ncnn {ncnn.__version__}: {ncnn_isa}\n")
    print("| threads | engine | median ms | ratio to ncnn | max rel. error vs ORT |")
    print("| --- | --- | --- | --- | --- |")
    for threads, med, errs in rows:
        for key in (key_c, key_rust, "ncnn", "ONNX Runtime"):
            err = errs.get("ours (C)" if key.startswith("ours C") else key, None)
            err_s = f"{err:.1e}" if err is not None else "-"
            print(f"| {threads} | {key} | {med[key]:.1f} | {med[key] / med['ncnn']:.2f} | {err_s} |")
    if len(rows) >= 2:
        a, b = rows[0][1], rows[-1][1]
        print(f"\nspeed-up {rows[0][0]} -> {rows[-1][0]} threads: ours C {a[key_c] / b[key_c]:.2f}x, "
              f"ours Rust {a[key_rust] / b[key_rust]:.2f}x, ncnn {a['ncnn'] / b['ncnn']:.2f}x, "
              f"ORT {a['ONNX Runtime'] / b['ONNX Runtime']:.2f}x")


def gpu_main(args, spec, spec_path, onnx_path, param, binf, image, work):
    import ncnn
    import onnxruntime as ort
    from safetensors.numpy import save_file

    ref = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).run(None, {"input": image})[0]
    scale = max(1.0, float(np.abs(ref).max()))
    net = ncnn.Net()
    net.opt.use_vulkan_compute = True
    net.opt.use_fp16_packed = False
    net.opt.use_fp16_storage = False
    net.opt.use_fp16_arithmetic = False
    net.load_param(param)
    net.load_model(binf)
    device = ncnn.get_gpu_info(0).device_name() if ncnn.get_gpu_count() > 0 else "no Vulkan device"

    def run_ncnn():
        ex = net.create_extractor()
        ex.input("in0", ncnn.Mat(image[0]).clone())
        _, out = ex.extract("out0")
        return np.array(out)

    # Ours, once through `cgnetc run --target gpu`, for the error.
    input_path, out_path = os.path.join(work, "input.safetensors"), os.path.join(work, "out.safetensors")
    save_file({"input": image}, input_path)
    subprocess.run([args.cgnetc, "run", "--model", spec_path, "--weights", args.weights, "--input", input_path,
                    "--out", out_path, "--target", "gpu"], check=True, capture_output=True)
    ours = load_file(out_path)["logits"].reshape(ref.shape)
    errs = {"ours (gpu)": float(np.abs(ours - ref).max()) / scale,
            "ncnn (Vulkan)": float(np.abs(run_ncnn().reshape(ref.shape) - ref).max()) / scale}
    times = {"ours (gpu)": [], "ncnn (Vulkan)": []}
    run_ncnn()
    for _ in range(args.rounds):
        time.sleep(0.3)
        for _ in range(2):
            t = time.perf_counter(); run_ncnn(); times["ncnn (Vulkan)"].append(time.perf_counter() - t)
        time.sleep(0.3)
        out = subprocess.run([args.cgnetc, "bench", "--model", spec_path, "--weights", args.weights, "--target", "gpu",
                              "--iters", "2"], check=True, capture_output=True, text=True).stdout
        times["ours (gpu)"].append(float(out.split("median ")[1].split(" ms")[0]) / 1e3)
    med = {k: median_ms(v) for k, v in times.items()}
    h, w = spec["height"], spec["width"]
    print(f"\nCGNet {spec['classes']} classes M{spec['stage2_blocks']}N{spec['stage3_blocks']} at {h}x{w}, GPU paths on "
          f"{device}, {args.rounds} rounds; median ms (upload, inference, logits read back)\n")
    print("| engine | median ms | ratio to ncnn | max rel. error vs ORT |")
    print("| --- | --- | --- | --- |")
    for key in ("ours (gpu)", "ncnn (Vulkan)"):
        print(f"| {key} | {med[key]:.1f} | {med[key] / med['ncnn (Vulkan)']:.2f} | {errs[key]:.1e} |")


if __name__ == "__main__":
    main()
