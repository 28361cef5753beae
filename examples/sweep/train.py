"""A stand-in for a training script that takes its params as command-line arguments."""

import argparse
import json
import math
import os

import hyperctl

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--note", required=True)
args = parser.parse_args()
params = hyperctl.get_job_params()
assert args.lr == params["learning_rate"] and args.note == params["note"], (args, params)
loss = (params["learning_rate"] - 0.05) ** 2 + 1 / math.sqrt(params["max_depth"])
print(f"params {params} -> loss {loss:.4f}")
with open(os.path.join(hyperctl.get_job_data_dir(), "result.json"), "w") as f:
    json.dump({"loss": loss}, f)
