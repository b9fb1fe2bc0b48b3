#!/usr/bin/env bash
# The compress CLI tried as a new user would, outside the test suite: every malformed case prints one line,
# exits 2 and leaves no file; Ctrl-C exits 130 with the resume line; two seeded runs write identical weights;
# --resume with a changed recipe refuses. Prints each command, its output and what it left behind.
#
#   bash tests/cli_checks.sh            # from the repository root, after `make venv`
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PY:-$ROOT/.venv/bin/python}"
CP="$ROOT/tools/compress.py"
WORK="$(mktemp -d)"
cd "$WORK"
export OMP_NUM_THREADS=1

cp "$ROOT/tests/fixtures/mynet.py" .
cat > base.yaml <<'EOF'
name: t
scale: 4
model: {name: "mynet:factory"}
data: {train: {type: demo, patch_size: 12, batch_size: 2, num_workers: 0}}
eval: {sets: [{type: demo}]}
prune: {method: l1, ratio: 0.5}
stages:
  pretrain: {total_iter: 4, optim: {type: Adam, lr: 1.0e-3}}
  finetune: {total_iter: 4, optim: {type: Adam, lr: 1.0e-3}}
train: {print_freq: 2, save_checkpoint_freq: 2}
EOF
head -c 4000 /dev/urandom > binary.yaml
"$PY" - <<'EOF'
import numpy as np, torch, mynet, graphprune as gp
from PIL import Image
from safetensors.torch import save_file
from graphprune.spec import make_spec
net = mynet.factory()
torch.save(net.state_dict(), "good.pt")
open("truncated.pt", "wb").write(open("good.pt", "rb").read()[:700])
save_file(net.state_dict(), "good.safetensors")
open("truncated.safetensors", "wb").write(open("good.safetensors", "rb").read()[:300])
torch.save(net, "whole_model.pt")
torch.save(mynet.Net(ch=16).state_dict(), "other_width.pt")
small, plan = gp.prune(net, torch.zeros(1, 3, 16, 16), 0.5)
gp.save(small, "pruned.safetensors", make_spec(plan, model_spec={"factory": "mynet:factory", "kwargs": {}}))
import os; os.makedirs("hr", exist_ok=True)
for i, (h, w) in enumerate([(200, 200), (40, 36)]):
    Image.fromarray((np.random.default_rng(i).random((h, w, 3)) * 255).astype("uint8")).save(f"hr/{i:04d}.png")
EOF
rm -rf __pycache__
snapshot() { find . -path ./__pycache__ -prune -o -print | sort; }

failures=0
expect() {  # expect CODE ARGS...: run compress.py, show its stderr, check the exit code, one line, no new file
  local want=$1; shift
  local before; before="$(snapshot)"
  echo "\$ python tools/compress.py $*"
  local err; err="$("$PY" "$CP" "$@" 2>&1 >/dev/null)"; local code=$?
  rm -rf __pycache__
  echo "$err" | sed 's/^/    /'
  local lines; lines=$(printf '%s\n' "$err" | grep -c .)
  local after; after="$(snapshot)"
  local verdict="ok"
  [ "$code" = "$want" ] || verdict="WRONG EXIT CODE"
  [ "$want" != 2 ] || [ "$lines" = 1 ] || verdict="$verdict, $lines LINES"
  [ "$want" != 2 ] || [ "$before" = "$after" ] || verdict="$verdict, FILES WRITTEN"
  echo "    -> exit $code, $lines line(s), files unchanged: $([ "$before" = "$after" ] && echo yes || echo no): $verdict"
  [ "$verdict" = ok ] || failures=$((failures + 1))
}

echo "== malformed input: one line, exit 2, nothing written"
expect 2 --recipe binary.yaml --out runs/x
expect 2 --recipe base.yaml --out runs/x --set stages.pretrain.optim.lr=fast
expect 2 --recipe base.yaml --out runs/x --set prune.ratio=half
expect 2 --recipe base.yaml --out runs/x --set stages.pretrain.total_iter=12.5
expect 2 --recipe base.yaml --out runs/x --set model.name=mynet:untraceable
for f in truncated.pt truncated.safetensors whole_model.pt pruned.safetensors other_width.pt; do
  expect 2 --recipe base.yaml --out runs/x --set model.checkpoint=$f
done
expect 2 --recipe base.yaml --out runs/x --device cuda
expect 2 --recipe base.yaml --out runs/x --set 'data.train={type: folder, hr_dir: hr, patch_size: 12}'
expect 2 --recipe base.yaml --out runs/x --set model.name=mynet:wrong_scale
expect 2 --recipe base.yaml --out runs/x --set model.name=mynet:wrong_scale --dry-run
expect 2 --recipe base.yaml --out runs/x --set "prune.ignore=['*taill*']"
expect 2 --recipe base.yaml --out runs/x --set "prune.ratios={'*bdy*': 0.3}"
echo "\$ python -c 'gp.analyze(model, torch.zeros(1, 4, 48, 48))'   # the library: one-line message"
"$PY" -c "
import torch, graphprune as gp, sr_models
try:
    gp.analyze(sr_models.create_model('ledsr_f256r16_x4', n_feats=8, n_resblocks=1), torch.zeros(1, 4, 48, 48))
except gp.TraceError as e:
    print('   ', type(e).__name__ + ':', e)
"

echo "== accepted: 1e3 iterations, a factory from the working directory (PYTHONPATH recorded)"
expect 0 --recipe base.yaml --out runs/x --set stages.pretrain.total_iter=1e3 --dry-run
expect 0 --recipe base.yaml --out runs/a
echo "    command.txt: $(cat runs/a/command.txt)"

echo "== two seeded runs give identical weights"
expect 0 --recipe base.yaml --out runs/b
for f in dense.safetensors pruned_init.safetensors model.safetensors; do
  if cmp -s runs/a/$f runs/b/$f; then echo "    $f identical"; else echo "    $f DIFFERS"; failures=$((failures + 1)); fi
done

echo "== --resume with a changed recipe refuses, listing the differences"
expect 2 --recipe base.yaml --out runs/a --resume --set prune.ratio=0.25 --set seed=2

echo "== Ctrl-C: a checkpoint after the running step, the resume line, exit 130"
"$PY" "$CP" --recipe base.yaml --out runs/c --set stages.finetune.total_iter=100000 >/dev/null 2>err.txt &
pid=$!
for _ in $(seq 1 600); do ls runs/c/finetune/checkpoints/iter_*.pt >/dev/null 2>&1 && break; sleep 0.2; done
kill -INT $pid; wait $pid; code=$?
echo "    $(tail -1 err.txt)"
echo "    -> exit $code"
[ "$code" = 130 ] || failures=$((failures + 1))

echo "== $failures failure(s); work folder: $WORK"
exit $((failures > 0))
