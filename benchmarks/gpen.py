"""GPEN-512 forward time per precision and device, as a ratio to its own convolutions run bare.

The network is the pure-PyTorch GPEN with the configuration of GPEN-BFR-512 (size 512, style_dim 512,
8 mapping layers, channel multiplier 2, narrow 1; read from ../shared/data/gpen_golden/GPEN-BFR-512.keys.json
when present) and random weights; one 1x3x512x512 face per forward, no gradient. Timed on the CPU in fp32
and bf16, and on the GPU in fp32, fp16 and bf16 when CUDA is available.

CPU bf16/fp16 rows are skipped on CPUs without native support for them (oneDNN needs AVX-512 BF16/FP16
or AMX; elsewhere PyTorch's reference path is about a hundred times slower than fp32, and
``TorchImageModel`` runs fp32 instead); ``--force-cpu`` times them anyway.

Baseline, measured in the same run, same device and dtype: the convolution floor. Every convolution
GPEN-512 performs (same input shapes, channel counts, kernels, strides, transposed or not) run
back-to-back as plain ``nn.Conv2d`` / ``nn.ConvTranspose2d`` layers on ready-made inputs. The ratio
says what the rest costs: style modulation and demodulation, FIR blurs, feature concatenation,
activations. Also printed: the floor's arithmetic (GFLOP per forward) and the rate GPEN reaches.

Usage: python benchmarks/gpen.py [--repeats 3] [--threads N] [--precisions fp32,bf16] [--force-cpu]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from inference_server.models.gpen import GpenConfig, GpenGenerator
from inference_server.models.torch_runner import PRECISIONS, cpu_has_native

KEYS_JSON = Path(__file__).resolve().parents[2] / "shared" / "data" / "gpen_golden" / "GPEN-BFR-512.keys.json"

ConvLayers = list[tuple[nn.Conv2d | nn.ConvTranspose2d, tuple[int, ...]]]  # each with its input shape


def gpen_512_config() -> GpenConfig:
    if KEYS_JSON.is_file():
        return GpenConfig(**json.loads(KEYS_JSON.read_text())["config"])
    return GpenConfig(size=512, style_dim=512, n_mlp=8, channel_multiplier=2, narrow=1)


def convolution_floor(config: GpenConfig) -> ConvLayers:
    """GPEN's convolutions as plain layers, each with the input shape it sees in the network."""
    ch, size, m = config.widths(), config.size, 2 if config.isconcat else 1
    layers: ConvLayers = [(nn.Conv2d(3, ch[size], 1, bias=False), (1, 3, size, size))]
    r = size
    while r > 4:  # encoder: FIR blur (pad 2) then 3x3 stride 2
        layers.append((nn.Conv2d(ch[r], ch[r // 2], 3, stride=2, bias=False), (1, ch[r], r + 1, r + 1)))
        r //= 2
    layers.append((nn.Conv2d(ch[4], ch[4], 3, padding=1, bias=False), (1, ch[4], 4, 4)))
    layers.append((nn.Conv2d(m * ch[4], 3, 1, bias=False), (1, m * ch[4], 4, 4)))
    r = 8
    while r <= size:  # synthesis: upsampling transposed conv, 3x3 conv, to-RGB 1x1
        layers.append((nn.ConvTranspose2d(m * ch[r // 2], ch[r], 3, stride=2, bias=False), (1, m * ch[r // 2], r // 2, r // 2)))
        layers.append((nn.Conv2d(m * ch[r], ch[r], 3, padding=1, bias=False), (1, m * ch[r], r, r)))
        layers.append((nn.Conv2d(m * ch[r], 3, 1, bias=False), (1, m * ch[r], r, r)))
        r *= 2
    return layers


def floor_gflop(layers: ConvLayers) -> float:
    flops = 0
    for layer, shape in layers:
        w = layer.weight
        k = w.shape[2] * w.shape[3]
        if isinstance(layer, nn.ConvTranspose2d):
            flops += 2 * shape[1] * w.shape[1] * k * shape[2] * shape[3]
        else:
            oh = (shape[2] + 2 * int(layer.padding[0]) - w.shape[2]) // layer.stride[0] + 1
            flops += 2 * w.shape[0] * w.shape[1] * k * oh * oh
    return flops / 1e9


def paired_ms(first: Callable[[], object], second: Callable[[], object], device: torch.device,
              repeats: int) -> tuple[float, float]:
    """Median wall times of ``first`` and ``second``, run alternately so that load on the machine hits both."""
    def once(run: Callable[[], object]) -> float:
        t = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return (time.perf_counter() - t) * 1000

    once(first), once(second)  # warm-up: kernel selection, allocator
    pairs = [(once(first), once(second)) for _ in range(repeats)]
    return statistics.median(a for a, _ in pairs), statistics.median(b for _, b in pairs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--precisions", default="fp32,bf16", help="CPU precisions (GPU: fp32,fp16,bf16)")
    parser.add_argument("--force-cpu", action="store_true", help="time CPU precisions without native support too")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = gpen_512_config()
    torch.manual_seed(0)
    model = GpenGenerator(config).eval()
    floor = convolution_floor(config)
    gflop = floor_gflop(floor)
    runs = [(torch.device("cpu"), p) for p in args.precisions.split(",")]
    if torch.cuda.is_available():
        runs += [(torch.device("cuda"), p) for p in ("fp32", "fp16", "bf16")]
    print(f"GPEN-{config.size} (cm {config.channel_multiplier}, narrow {config.narrow}), "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters, convolution floor "
          f"{gflop:.1f} GFLOP per forward; CPU threads: {torch.get_num_threads()}")
    print(f"{'device':>8} {'precision':>9} {'GPEN ms':>9} {'floor ms':>9} {'ratio':>6} {'GPEN GFLOP/s':>13}")
    for device, precision in runs:
        if device.type == "cpu" and not (args.force_cpu or cpu_has_native(precision)):
            print(f"{device.type:>8} {precision:>9}  skipped: no native {precision} convolutions on this CPU "
                  f"({torch.backends.cpu.get_cpu_capability()}); TorchImageModel runs fp32 (--force-cpu to time it)")
            continue
        dtype = PRECISIONS[precision]
        net = model.to(device, dtype)
        face = torch.rand(1, 3, config.size, config.size, device=device, dtype=dtype) * 2 - 1
        layers = [(layer.to(device, dtype), torch.randn(shape, device=device, dtype=dtype)) for layer, shape in floor]
        with torch.inference_mode():
            gpen_ms, floor_ms = paired_ms(lambda: net(face), lambda: [layer(x) for layer, x in layers],  # noqa: B023
                                          device, args.repeats)
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        print(f"{device.type:>8} {precision:>9} {gpen_ms:9.1f} {floor_ms:9.1f} {gpen_ms / floor_ms:5.2f}x "
              f"{gflop / gpen_ms * 1000:13.1f}  ({name})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
