"""A stand-in for a training script: reads its params from hyperctl, writes a result."""

import json
import math
import os

import hyperctl

params = hyperctl.get_job_params()
loss = (params["learning_rate"] - 0.05) ** 2 + 1 / math.sqrt(params["max_depth"])
print(f"params {params} -> loss {loss:.4f}")
with open(os.path.join(hyperctl.get_job_data_dir(), "result.json"), "w") as f:
    json.dump({"loss": loss}, f)
