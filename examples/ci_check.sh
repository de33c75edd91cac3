#!/usr/bin/env bash
# A CI step that checks a project's data pipeline with safegen (run from the repository
# root). In GitHub Actions, for example:
#
#   - run: pip install -e "path/to/safegen-checkout"   # safegen is not on PyPI
#   - run: python -m safegen check mypkg.data:train_batches --steps 50
#
# Exit status: 0 clean, 1 an array changed after it was handed out, 2 usage error,
# 3 the data source raised. Here the fixed pipeline must pass and the buggy one must fail.
set -u
python -m safegen check examples.pipeline:fixed_batches --steps 50 || exit 1
python -m safegen check examples.pipeline:train_batches --steps 50
status=$?
if [ "$status" -ne 1 ]; then
    echo "expected safegen to find the reused buffer (exit 1), got exit $status" >&2
    exit 1
fi
echo "ci_check: the fixed pipeline is clean; the buggy one was caught (exit 1)."
