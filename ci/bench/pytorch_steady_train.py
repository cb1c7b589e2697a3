"""PyTorch eager peer of esper's steady-train epoch (core/benches/device_epoch.rs).

Same model (Linear 4 -> 2), data, initial parameters, learning rate, momentum and
batch size, read from the bench's --dump file; the same steps per batch (forward,
cross-entropy, backward, gradient norm read back, SGD step, loss read back) and one
evaluation per epoch, written the way a PyTorch user writes them: batches sliced on
the host and moved with .to(device), torch.optim.SGD. One intra-op thread, as esper's
libtorch device. On CUDA, the same determinism settings as esper (cuDNN off, no
autotuning, deterministic algorithms; CUBLAS_WORKSPACE_CONFIG comes from the caller)
and the same one-step warm-up before the first timed epoch.

    python3 ci/bench/pytorch_steady_train.py DUMP [--epochs N] [--device cpu|cuda[:N]]

When the dump has a `seed` (device_epoch --blending-seed), a second Linear, the
seed, starts from its weights and is blended into the model's output as Esper-Lite
trains a BLENDING seed, CONVEX at the dumped alpha: the host learns from its own
loss, the seed from the output with itself at alpha 1 and the host detached, one SGD
step over both, and the reported loss is the blended output's.

Prints one line in the bench's format, labelled `pytorch` (`pytorch+seed`).
"""
import argparse
import json
import time
import warnings

# torch warns on import when NumPy is absent; nothing here uses NumPy.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
import torch  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dump", help="JSON written by device_epoch --dump")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--device", default="cpu")
    return parser.parse_args()


def build(spec, device):
    features, classes = spec["features"], spec["classes"]
    model = torch.nn.Linear(features, classes).to(device)
    with torch.no_grad():
        model.weight.copy_(torch.tensor(spec["weight"]).reshape(classes, features))
        model.bias.copy_(torch.tensor(spec["bias"]))
    optimizer = torch.optim.SGD(model.parameters(), lr=spec["learning_rate"], momentum=spec.get("momentum", 0.0))
    return model, optimizer


class Blended(torch.nn.Module):
    """The host with a BLENDING seed: `alpha * seed(x) + (1 - alpha) * host(x)`."""

    def __init__(self, host, seed, alpha):
        super().__init__()
        self.host, self.seed, self.alpha = host, seed, alpha

    def forward(self, x):
        return self.alpha * self.seed(x) + (1.0 - self.alpha) * self.host(x)

    def losses(self, x, y):
        """The host's own loss, and the seed's at alpha 1 (the host detached, which
        at alpha 1 leaves the seed's output alone)."""
        cross_entropy = torch.nn.functional.cross_entropy
        return cross_entropy(self.host(x), y), cross_entropy(self.seed(x), y)


def build_seeded(spec, device):
    host, _ = build(spec, device)
    seed = torch.nn.Linear(spec["features"], spec["classes"]).to(device)
    with torch.no_grad():
        seed.weight.copy_(torch.tensor(spec["seed"]["weight"]).reshape(spec["classes"], spec["features"]))
        seed.bias.copy_(torch.tensor(spec["seed"]["bias"]))
    model = Blended(host, seed, spec["seed"]["alpha"])
    optimizer = torch.optim.SGD(model.parameters(), lr=spec["learning_rate"], momentum=spec.get("momentum", 0.0))
    return model, optimizer


def step(model, optimizer, x, y, device):
    x, y = x.to(device), y.to(device)
    if isinstance(model, Blended):
        host_loss, seed_loss = model.losses(x, y)
        with torch.no_grad():
            loss = torch.nn.functional.cross_entropy(model(x), y)
        trained = host_loss + seed_loss
    else:
        loss = trained = torch.nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad()
    trained.backward()
    torch.sqrt(sum((p.grad * p.grad).sum() for p in model.parameters())).item()
    optimizer.step()
    return loss.item()


def epoch(model, optimizer, inputs, targets, batch, device):
    for start in range(0, inputs.shape[0], batch):
        step(model, optimizer, inputs[start:start + batch], targets[start:start + batch], device)
    with torch.no_grad():
        return torch.nn.functional.cross_entropy(model(inputs.to(device)), targets.to(device)).item()


def main():
    args = parse_args()
    torch.set_num_threads(1)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.enabled = False
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True)
    with open(args.dump) as dump:
        spec = json.load(dump)
    inputs = torch.tensor(spec["inputs"], dtype=torch.float32).reshape(-1, spec["features"])
    targets = torch.tensor(spec["targets"], dtype=torch.int64)
    if device.type == "cuda":
        # Kernel loading and the cuBLAS handle, paid before timing as esper does;
        # then a fresh model and optimizer from the dumped parameters.
        warm_model, warm_optimizer = build(spec, device)
        step(warm_model, warm_optimizer, torch.zeros(1, spec["features"]), torch.zeros(1, dtype=torch.int64), device)
    model, optimizer = build_seeded(spec, device) if "seed" in spec else build(spec, device)
    label = "pytorch+seed" if "seed" in spec else "pytorch"
    times, loss = [], float("nan")
    for _ in range(args.epochs):
        started = time.perf_counter()
        loss = epoch(model, optimizer, inputs, targets, spec["batch_size"], device)
        times.append((time.perf_counter() - started) * 1000.0)
    times.sort()
    mean = sum(times) / len(times)
    p95 = times[int((len(times) - 1) * 0.95)]
    print(f"epoch_ms {label:<10} mean {mean:.4f} p50 {times[len(times) // 2]:.4f} p95 {p95:.4f} final_loss {loss:.6f}")


if __name__ == "__main__":
    main()
