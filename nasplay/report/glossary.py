"""What each outcome a report uses means, in words a newcomer reads (the report defines a metric where it uses it)."""

from __future__ import annotations

# metric -> its definition (a clause after "`metric`: ")
METRICS = {
    "test/acc": "top-1 accuracy on the held-out test split, measured once after the last epoch (higher is better)",
    "test/loss": "mean cross-entropy on the held-out test split after the last epoch (lower is better)",
    "val/acc": "top-1 accuracy on the validation split after the last epoch (higher is better)",
    "val/acc_best": "the best validation accuracy of any epoch (higher is better)",
    "val/loss": "mean cross-entropy on the validation split after the last epoch (lower is better)",
    "train/loss": "mean cross-entropy on the training batches of the last epoch (lower is better)",
    "train/acc": "top-1 accuracy on the training batches of the last epoch (higher is better)",
    "train/loss_auc": "the area under the per-epoch training-loss curve divided by the epochs, i.e. the mean training "
                      "loss over the whole run: lower means the network trained faster (not only that it ended lower)",
    "val/loss_auc": "the area under the per-epoch validation-loss curve divided by the epochs: the mean validation loss "
                    "over the run (lower is better)",
    "epochs_to_target": "epochs until the training error first fell to the experiment's target; a seed that never got "
                        "there is kept as censored at its budget (lower is better)",
    "steps_to_target": "optimizer steps until the target was first reached (see epochs_to_target; lower is better)",
    "flops": "floating-point operations of one forward pass of one image as the network trains (a multiply-add counts 2)",
    "params": "trainable parameters of the network as it trains (its classes and input)",
    "wall_time": "seconds one trial took to train and evaluate",
    "imgs_per_sec": "training images per second",
}


def define(metric: str) -> str:
    """``metric``'s definition, or an empty string for a metric of no fixed meaning (a user's own column)."""
    return METRICS.get(metric, "")
