"""PyTorch eager peer for core/benches/device_epoch.rs: same data, same initial
parameters, same steps (forward, cross-entropy, backward, gradient norm, SGD), one
intra-op thread as the Rust side. Prints one line in the bench's format."""
import json
import sys
import time

import torch


def main(path, epochs):
    torch.set_num_threads(1)
    spec = json.load(open(path))
    features, classes, batch = spec["features"], spec["classes"], spec["batch_size"]
    inputs = torch.tensor(spec["inputs"], dtype=torch.float32).reshape(-1, features)
    targets = torch.tensor(spec["targets"], dtype=torch.int64)
    model = torch.nn.Linear(features, classes)
    with torch.no_grad():
        model.weight.copy_(torch.tensor(spec["weight"]).reshape(classes, features))
        model.bias.copy_(torch.tensor(spec["bias"]))
    optimizer = torch.optim.SGD(model.parameters(), lr=spec["learning_rate"], momentum=0.0)
    times, loss = [], float("nan")
    for _ in range(epochs):
        started = time.perf_counter()
        for start in range(0, inputs.shape[0], batch):
            x, y = inputs[start:start + batch], targets[start:start + batch]
            step_loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            step_loss.backward()
            torch.sqrt(sum((p.grad * p.grad).sum() for p in model.parameters())).item()
            optimizer.step()
            step_loss.item()
        with torch.no_grad():
            loss = torch.nn.functional.cross_entropy(model(inputs), targets).item()
        times.append((time.perf_counter() - started) * 1000.0)
    times.sort()
    mean = sum(times) / len(times)
    p95 = times[int((len(times) - 1) * 0.95)]
    print(f"epoch_ms {'pytorch':<10} mean {mean:.4f} p50 {times[len(times) // 2]:.4f} p95 {p95:.4f} final_loss {loss:.6f}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 300)
