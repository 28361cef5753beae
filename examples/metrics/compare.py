"""Run the metrics sweep from Python and name its best job: `python examples/metrics/compare.py`."""

from pathlib import Path

from hyperctl import Batch

batch = Batch.run(Path(__file__).parent / "template.yml", template=True)  # returns when every job has ended
print(f"batch {batch.name}: {batch.status}, {len(batch)} jobs")
results = []
for job in batch:
    summary = job.summary()  # per metric: last, min, max (with their steps), count
    results.append((summary["acc"].max, job.name, job.params, summary["loss"].last))
    print(
        f"  {job.name:<36} lr={job.params['lr']:<5} width={job.params['width']:<3} "
        f"loss={summary['loss'].last:.4f} acc={summary['acc'].max:.4f}"
    )
acc, name, params, loss = max(results)
print(f"best: {name} acc={acc:.4f} (lr={params['lr']}, width={params['width']})")
