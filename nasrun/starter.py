"""The commented starter spec that ``nasrun init`` writes."""

STARTER_SPEC = """\
# nasrun experiment spec. Check it with `nasrun validate FILE`; run it with
#   mpirun -np 3 nasrun run FILE        (rank 0 searches, the other ranks train)
experiment:
  name: my-search            # letters, digits, '.', '_', '-'; used for files and job names
  output_dir: runs/my-search # the checkpoint (HDF5) and reports go here
  seed: 0

space:
  builtin: chain             # chain (Zoph & Le style layers) or nb201 (NAS-Bench-201 cell)
  options: {kind: cnn, max_layers: 4, widths: [16, 32, 64]}
  params:                    # your own parameters, searched jointly with the architecture
    lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
    optimizer: [sgd, adam]   # a list is a categorical parameter
    momentum: {type: float, low: 0.5, high: 0.99, when: {optimizer: sgd}}  # only for sgd

strategy:
  name: local_search         # random, evolution, rl, hyperband, asha, bohb, gp, smac, tpe, local_search
  options: {numeric_steps: 4}

objective:
  type: train                # train, table (NAS-Bench-201 lookup) or function (module:function)
  metric: valid_accuracy
  mode: max
  dataset: {name: digits}    # digits (bundled), cifar10 (path: DIR) or file (path: data.npz/.h5)
  epochs: 5
  batch_size: 64
  optimizer: {name: adam, lr: 1.0e-3}   # searched lr/optimizer/momentum/... override these

budget:
  max_trials: 50             # and/or max_seconds, target

resources:
  ranks_per_trial: 1         # ranks per trial group (data-parallel with Horovod)
  gpus_per_group: 0
  backend: auto              # horovod, torch (torch.distributed) or auto
  trial_time_limit: 600      # seconds; a trial over it is recorded as failed
  max_consecutive_failures: 5

checkpoint:
  every_epochs: 1            # in-flight weights every K epochs...
  every_seconds: 60          # ...at most this often

slurm:                       # used by `nasrun submit`
  nodes: 1
  tasks_per_node: 3
  time: "01:00:00"
"""
