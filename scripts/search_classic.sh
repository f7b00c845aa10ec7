#!/usr/bin/env bash
# The real run behind the README's NAS section (issue 15), on the CPU at the embedded data's budget:
# 1. experiment=search_classic as configured (NSGA-II, accuracy vs FLOPs, the ten classics beside it);
# 2. the same space searched by random, TPE, NSGA-II and evolution, two seeds each, 10 trained samples per run, at a
#    smaller budget (2 epochs on 600 images, networks under 4 MFLOPs, no classics, no pruning), compared with
#    nasplay report --anytime.
# Everything goes to runs/search_classic/; the README's figures are copied from there into docs/.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} WANDB_MODE=${WANDB_MODE:-offline}
PY=${PY:-python}
$PY -m nasplay experiment=search_classic logger=none progress=false
small=(experiment.classics=null experiment.max_flops=4000000.0 data.limit=600 trainer.max_epochs=2 sweep.n_trials=10
       sweep.pruner.kind=none logger=none progress=false)
dirs=()
for seed in 0 1; do
  $PY -m nasplay experiment=search_classic "${small[@]}" sweep=random 'sweep.objectives=[val/acc]' sweep.seed=$seed study=cmp_random_s$seed
  $PY -m nasplay experiment=search_classic "${small[@]}" sweep=tpe 'sweep.objectives=[val/acc]' sweep.seed=$seed study=cmp_tpe_s$seed
  $PY -m nasplay experiment=search_classic "${small[@]}" sweep=nsga2 sweep.options.population_size=5 sweep.seed=$seed study=cmp_nsga2_s$seed
  $PY -m nasplay experiment=search_classic "${small[@]}" sweep=evolution sweep.options.population_size=5 sweep.seed=$seed study=cmp_evolution_s$seed
  dirs+=(runs/search_classic/cmp_random_s$seed runs/search_classic/cmp_tpe_s$seed runs/search_classic/cmp_nsga2_s$seed
         runs/search_classic/cmp_evolution_s$seed)
done
$PY -c "import sys; from nasplay.cli import main; sys.exit(main(sys.argv[1:]))" report "${dirs[@]}" --anytime --out runs/search_classic/anytime
