"""A stand-in for a training loop that reports its loss and accuracy every epoch."""

import math

import hyperctl

params = hyperctl.get_job_params()
lr, width = params["lr"], params["width"]
for epoch in range(10):
    # The loss falls with each epoch to a floor that is lowest for lr 0.1 and a wide model.
    loss = math.log10(lr / 0.1) ** 2 / 2 + 4 / width + math.exp(-(epoch + 1) / 2)
    hyperctl.report(loss=loss, acc=1 / (1 + loss), step=epoch)
print(f"lr {lr} width {width}: loss {loss:.4f}")
