#!/bin/sh
# Run one test program in an L1 host (tests/nested/qtest-rdma.test.ts) and,
# if it has not finished after WATCH_SECONDS, show what it and its QEMUs are
# doing before ending them: every thread's stack (gdb), and the guests'
# serial output, then exit 124 with "HUNG" in the output.
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
            gdb -p "$p" -batch -ex 'thread apply all bt' 2>/dev/null | grep '^Thread\|^#'
        done
        kill -9 "$prog"
        pkill -9 -f qemu-system-x86_64
        exit 124
    fi
done
wait "$prog"
