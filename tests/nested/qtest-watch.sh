#!/bin/sh
# Run one test program in an L1 host (tests/nested/qtest-rdma.test.ts) and,
# if it has not finished after WATCH_SECONDS, show what it and its QEMUs are
# doing before ending them: where every thread waits in the kernel (wchan
# and kernel stack; not gdb: the one time it attached to a hung run's
# QEMUs, the L1 host went down), and the guests' serial output, then exit 124 with "HUNG" in the
# output.
#
#   qtest-watch.sh WATCH_SECONDS PROGRAM [ARGS...]
secs=$1
shift
"$@" &
prog=$!
i=0
while kill -0 "$prog" 2>/dev/null; do
    sleep 1
    i=$((i + 1))
    if [ "$i" -ge "$secs" ]; then
        echo "HUNG: $* has not finished after $secs s; what it is doing:"
        for d in /tmp/migration-test-*; do
            [ -d "$d" ] || continue
            for s in src_serial dest_serial; do
                [ -f "$d/$s" ] && echo "$d/$s: $(wc -c < "$d/$s") bytes, ends with: $(tail -c 16 "$d/$s" | od -An -c | tr -s ' ')"
            done
        done
        for p in $(pgrep -f qemu-system-x86_64) "$prog"; do
            echo "== pid $p: $(tr '\0' ' ' < /proc/"$p"/cmdline | cut -c1-120)"
            for t in /proc/"$p"/task/*; do
                # where each thread waits in the kernel (a uffd fault, KVM_RUN, a futex...)
                echo "-- $(cat "$t"/comm) ($(cat "$t"/wchan)): $(tr '\n' ' ' < "$t"/stack | cut -c1-300)"
            done
        done
        kill -9 "$prog"
        pkill -9 -f qemu-system-x86_64
        exit 124
    fi
done
wait "$prog"
