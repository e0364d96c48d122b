#!/usr/bin/env bash
# Regenerates the committed reference results with exactly the README's commands,
# from a clean tree, so that every table under results/ comes from one commit.
#
#   benchmarks/reference.sh tutorial   # the TF1 tutorial replay and bench on the embedded sample
#   benchmarks/reference.sh threads    # one thread against two, compared with `recurrent-mnist compare`
#   benchmarks/reference.sh mnist      # MNIST row by row, three cells, three seeds, to convergence (IDX files in data/mnist)
#   benchmarks/reference.sh permuted   # permuted sequential MNIST: four cells at 70 K parameters, a two-core budget
#   benchmarks/reference.sh sequential # sequential MNIST (pixel by pixel), the same cells and budget
#   benchmarks/reference.sh pixels     # the two above side by side, one core each (about an hour on two cores)
#   benchmarks/reference.sh fashion    # Fashion-MNIST, three cells, three seeds, to convergence
#   benchmarks/reference.sh matched    # Fashion-MNIST, the three cells at equal parameter counts, to convergence
#   benchmarks/reference.sh frameworks # Fashion-MNIST, Keras and PyTorch cells in one table (needs ".[torch]")
#   benchmarks/reference.sh tuned      # a search on the sample, then each cell at its best trial
#   benchmarks/reference.sh speed      # results/speed, all four parts below (needs pip install -e ".[torch]")
#   benchmarks/reference.sh speed-serve  # a training step's profile; single-image latency
#   benchmarks/reference.sh speed-train  # epoch time against PyTorch, at two threads and at one
#   benchmarks/reference.sh speed-lstm   # the small LSTM over 5 rounds; XLA for the LSTM at one thread
#   benchmarks/reference.sh speed-long   # long sequences: the unrolled fast path against the stock loop
#   benchmarks/reference.sh memory     # results/memory: memory across 30 in-process variants and a 30-trial search
#   benchmarks/reference.sh cluster    # results/cluster: what a Dask cluster adds per variant (needs ".[cluster]")
#
# Run it with nothing else on the machine. An existing folder is discarded first
# (--fresh), so the tables are remade whole by this commit; commit them afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

# Results written by an earlier part do not count: the parts can run one after another on one commit.
if [ -n "$(git status --porcelain --untracked-files=no -- . ':!results')" ]; then
    echo "error: the tree has uncommitted changes outside results/; commit them first, so the results name one commit" >&2
    exit 2
fi
[ $# -gt 0 ] || { echo "usage: $0 tutorial|threads|mnist|permuted|sequential|pixels|fashion|matched|frameworks|tuned|speed[-serve|-train|-lstm|-long]|memory|cluster ..." >&2; exit 2; }
export TF_CPP_MIN_LOG_LEVEL=2

for part in "$@"; do
    case "$part" in
    tutorial)
        rm -rf results/reference/tutorial-replay-mnist-sample
        python benchmarks/tutorial_replay.py --dataset mnist-sample
        recurrent-mnist bench --preset tutorial --dataset mnist-sample --seeds 0 1 2 --threads 2 \
            --results-dir results/reference --run-name tutorial-mnist-sample --fresh
        ;;
    threads)
        # Seed by seed, alternating the thread counts, so that a drift of the machine's speed
        # over the run falls on both sides alike.
        rm -rf results/reference/sample-threads-1 results/reference/sample-threads-2
        for seed in 0 1 2; do
            for threads in 1 2; do
                recurrent-mnist bench --dataset mnist-sample --cells lstm gru simple_rnn --seeds "$seed" \
                    --epochs 4 --threads "$threads" --results-dir results/reference --run-name "sample-threads-$threads"
            done
        done
        recurrent-mnist compare results/reference/sample-threads-1 results/reference/sample-threads-2 \
            --out results/reference/compare-threads
        ;;
    mnist)
        recurrent-mnist bench --dataset mnist --data-dir data/mnist --cells lstm gru simple_rnn --seeds 0 1 2 \
            --units 128 --epochs 40 --early-stopping 5 --threads 2 --results-dir results/reference --run-name mnist --fresh
        ;;
    permuted)
        recurrent-mnist bench --dataset mnist --data-dir data/mnist --reading permuted-pixels --permutation-seed 0 \
            --cells lstm gru simple_rnn indrnn --layers 1 indrnn=2 --params 70000 --clipnorm 1 --seeds 0 1 \
            --train-images 12000 --epochs 2 --no-measure-inference --threads 1 --results-dir results/reference \
            --run-name permuted-mnist --fresh
        ;;
    sequential)
        recurrent-mnist bench --dataset mnist --data-dir data/mnist --reading pixels \
            --cells lstm gru simple_rnn indrnn --layers 1 indrnn=2 --params 70000 --clipnorm 1 --seeds 0 1 \
            --train-images 12000 --epochs 2 --no-measure-inference --threads 1 --results-dir results/reference \
            --run-name sequential-mnist --fresh
        ;;
    pixels)
        # The two tasks side by side, one thread and one core each; their output goes to a log each.
        log="${TMPDIR:-/tmp}"
        taskset -c 0 bash benchmarks/reference.sh permuted > "$log/permuted-mnist.log" 2>&1 &
        first=$!
        taskset -c 1 bash benchmarks/reference.sh sequential > "$log/sequential-mnist.log" 2>&1 &
        second=$!
        echo "permuted and sequential MNIST: logs in $log/permuted-mnist.log and $log/sequential-mnist.log"
        wait "$first"
        wait "$second"
        ;;
    fashion)
        recurrent-mnist bench --dataset fashion-mnist --cells lstm gru simple_rnn --seeds 0 1 2 \
            --units 128 --bidirectional --epochs 40 --early-stopping 5 --threads 2 \
            --results-dir results/reference --run-name fashion-mnist --fresh
        ;;
    matched)
        recurrent-mnist bench --dataset fashion-mnist --cells lstm gru simple_rnn --units 64 --match-params \
            --seeds 0 1 2 --epochs 40 --early-stopping 5 --threads 2 --results-dir results/reference \
            --run-name fashion-matched --fresh
        ;;
    frameworks)
        recurrent-mnist bench --dataset fashion-mnist --cells lstm gru simple_rnn --frameworks keras torch \
            --units 64 --seeds 0 1 2 --epochs 4 --threads 2 --results-dir results/reference \
            --run-name fashion-keras-torch --fresh
        ;;
    tuned)
        recurrent-mnist tune --dataset mnist-sample --cells lstm gru simple_rnn --max-trials 9 --max-epochs 4 \
            --seed 0 --threads 2 --results-dir results/reference --run-name tune-sample --fresh
        recurrent-mnist bench --from-tune results/reference/tune-sample --dataset mnist-sample --seeds 0 1 2 \
            --epochs 4 --threads 2 --results-dir results/reference --run-name sample-from-tune --fresh
        ;;
    speed)
        # The four parts below, in turn.
        bash benchmarks/reference.sh speed-serve speed-train speed-lstm speed-long
        ;;
    speed-train)
        # vs_pytorch.py appends to its .jsonl: the tables are remade whole, as bench's --fresh does.
        for name in vs_pytorch vs_pytorch_1thread; do rm -f results/speed/"$name".*; done
        python benchmarks/vs_pytorch.py --threads 2 --rounds 3 --name vs_pytorch
        taskset -c 1 python benchmarks/vs_pytorch.py --threads 1 --rounds 3 --name vs_pytorch_1thread
        ;;
    speed-lstm)
        # vs_pytorch.py appends to its .jsonl: the tables are remade whole, as bench's --fresh does.
        for name in lstm_100x50_2threads_5rounds lstm_xla_1thread; do rm -f results/speed/"$name".*; done
        python benchmarks/vs_pytorch.py --threads 2 --cells lstm --shapes 100x50 --impls keras torch --rounds 5 \
            --name lstm_100x50_2threads_5rounds
        taskset -c 1 python benchmarks/vs_pytorch.py --threads 1 --cells lstm --impls keras keras-graph keras-xla torch --rounds 2 \
            --name lstm_xla_1thread
        ;;
    speed-serve)
        for name in profile_2threads latency_2threads latency_1thread latency_lstm_widths; do rm -f results/speed/"$name".*; done
        python benchmarks/profile_step.py --cells lstm gru simple_rnn --shapes 100x50 128x256 --threads 2 --steps 200 \
            --name profile_2threads
        python benchmarks/latency.py --threads 2 --rounds 3 \
            --impls predict_on_batch serve serve-fast serve-stock tflite floor torch --name latency_2threads
        taskset -c 1 python benchmarks/latency.py --threads 1 --rounds 3 \
            --impls predict_on_batch serve serve-fast serve-stock tflite floor torch --name latency_1thread
        python benchmarks/latency.py --cells lstm --units 120 127 128 136 256 --impls serve serve-fast serve-stock \
            --threads 2 --rounds 2 --name latency_lstm_widths
        ;;
    speed-long)
        rm -rf results/speed/long_sequences.* results/speed/memory-784
        python benchmarks/long_sequences.py --lengths 28 112 392 784 --batch 256 --threads 2 --name long_sequences
        # What a 784-step variant adds to its process at batch 256, each fast layer beside its stock one.
        recurrent-mnist bench --dataset mnist-sample --reading pixels --cells lstm keras_lstm gru keras_gru \
            simple_rnn keras_simple_rnn indrnn keras_indrnn --batch-size 256 --epochs 1 --train-images 1024 \
            --no-measure-inference --threads 2 --results-dir results/speed --run-name memory-784 --fresh
        ;;
    memory)
        # Every variant and trial in this one process: what each adds to its memory.
        rm -f results/memory/memory_growth.*
        python benchmarks/memory_growth.py --threads 2 --name memory_growth
        ;;
    cluster)
        # local:2, a dask scheduler with two dask workers, and local:1, each on loopback: 8 equal variants.
        rm -f results/cluster/overhead.*
        python benchmarks/cluster_overhead.py --variants 8 --out results/cluster
        ;;
    *)
        echo "error: unknown part '$part'; choose tutorial, threads, mnist, permuted, sequential, pixels, fashion, matched, frameworks, tuned, speed, speed-serve, speed-train, speed-lstm, speed-long, memory or cluster" >&2
        exit 2
        ;;
    esac
done
echo "Done at commit $(git rev-parse --short HEAD); check git status and commit the results."
