# Sourced by /init inside the VM: runs the same Swift test suites as the host, against the v2 tree.
# Each suite has its own time limit; the whole run has one more, so a hang ends as a failure.
cd /vm
export MYDOCKER_BIN_DIR=/vm/bin MYDOCKER_TEST_IMAGE=/vm/busybox.tar CI=true HOME=/root TERM=dumb
export MYDOCKER_SOAK_OPERATIONS="$(cat /vm/soak-operations 2>/dev/null)"
filter=$(cat /vm/filter 2>/dev/null)
set -- --testing-library swift-testing
[ -n "$filter" ] && set -- "$@" --filter "$filter"
timeout -s KILL "$(cat /vm/timeout)" /vm/bin/mydocker-swiftPackageTests.xctest "$@" >/tmp/tests.log 2>&1
rc=$?
# Every result and every failure's evidence (not the "started" lines), without colour codes.
sed 's/\x1b\[[0-9;]*m//g' /tmp/tests.log | grep -vE '^◇ ' | head -3000
# A test that passed with a known issue is marked ━ instead of ✔.
passed=$(sed 's/\x1b\[[0-9;]*m//g' /tmp/tests.log | grep -cE '^(✔|━) Test ".* passed')
failed=$(sed 's/\x1b\[[0-9;]*m//g' /tmp/tests.log | grep -cE '^✘ Test ".* failed')
if [ "$rc" != 0 ] && [ "$failed" = 0 ]; then
    echo "--- test process exited $rc without a failed test (timeout or crash); tail of its output:"
    tail -30 /tmp/tests.log
    failed=1
fi
echo "VM-RESULT passed=$passed failed=$failed rc=$rc"
