#!/bin/sh
# Run one test program in an L1 host (the qtests of tests/nested/qtest-rdma.test.ts,
# the KVM selftests of tests/nested/kselftests.test.ts) and, if it has not
# finished after WATCH_SECONDS, show what it and its VMs are doing before
# ending them, then exit 124 with "HUNG" in the output. Its VMs are the
# QEMUs it started, or the program itself when it runs a VM of its own
# (a KVM selftest); the program is always looked at:
#  - the guests' serial output (qtests);
#  - each userfaultfd the program and its QEMUs hold: the faults queued and
#    not yet read by user space ("pending") and all the faults waiting now
#    ("total": those read by user space, or taken by an in-kernel resolver,
#    and not yet resolved, too), from its fdinfo, twice, 2 s apart: a fault
#    pending while every handler thread sleeps in poll is a lost wake-up; a
#    fault waiting but not pending while a thread sleeps in handle_userfault
#    is one read and never resolved, or one the resolver took and never
#    woke; none waiting, no fault path is holding anything up;
#  - where every thread waits in the kernel (wchan and kernel stack; not gdb:
#    the one time it attached to a hung run's QEMUs, the L1 host went down);
#  - what each thread did in 2 s (user, system and guest CPU time), and what
#    each VM's vCPUs did (KVM's exit counters in debugfs, same 2 s): a vCPU
#    that runs guest code, loops on a fault, or waits;
#  - which 4 KiB pages of guest RAM differ between the source and the
#    destination QEMU (their largest anonymous mapping, read through
#    /proc/PID/mem): a stuck destination with its code or data pages wrong,
#    or right; below 1 MiB, the differing bytes themselves;
#  - the exceptions and interrupts KVM injected and the instructions it
#    emulated since the program started (tracefs; rare in the test guest,
#    which runs with interrupts off and no IDT of its own).
#
#   hang-watch.sh WATCH_SECONDS PROGRAM [ARGS...]
secs=$1
shift

# utime stime guest_time (clock ticks) of every thread of process $1, one "tid comm u s g" line each
thread_times() {
    for t in /proc/"$1"/task/*; do
        # the fields after "(comm) ": state is the 1st, utime the 12th, stime the 13th, guest_time the 41st
        set -- $(sed 's/^.*) //' "$t"/stat)
        echo "${t##*/} $(tr ' ' _ < "$t"/comm) $1 ${12} ${13} ${41}"
    done
}

# KVM's counters of the VM of process $1, "name value" lines
kvm_counters() {
    for d in /sys/kernel/debug/kvm/"$1"-*; do
        [ -d "$d" ] || continue
        for f in exits io_exits mmio_exits halt_exits irq_exits signal_exits \
                 pf_taken pf_fixed pf_guest pf_spurious pf_emulate pf_fast \
                 insn_emulation nested_run req_event halt_wakeup \
                 async_pf_ready; do
            [ -r "$d/$f" ] && echo "$f $(cat "$d/$f")"
        done
    done
}

# "start end" (decimal) of the largest anonymous writable mapping of process $1: guest RAM
ram_range() {
    [ -r /proc/"$1"/maps ] || return 0
    best=0
    range=
    while read -r r perms off dev inode path; do
        [ -z "$path" ] || continue
        case $perms in rw-?) ;; *) continue ;; esac
        s=$((0x${r%-*}))
        e=$((0x${r#*-}))
        if [ $((e - s)) -gt "$best" ]; then
            best=$((e - s))
            range="$s $e"
        fi
    done < /proc/"$1"/maps
    echo "$range"
}

# Copy process $1's guest RAM to file $2 (a page that would fault is not waited for: 20 s at most)
dump_ram() {
    set -- "$1" "$2" $(ram_range "$1")
    [ -n "$3" ] || return 1
    timeout -s KILL 20 dd if=/proc/"$1"/mem of="$2" bs=4096 \
        skip=$(($3 / 4096)) count=$((($4 - $3) / 4096)) 2>/dev/null
    echo "$(($4 - $3)) bytes at $(printf %x "$3")"
}

# The symbol of this (L1) kernel at address $1 (16 hex digits, 0x optional)
# as "sym+0xoff"; nothing for an address outside the kernel. An L2 guest's
# RIP that resolves here is L1's own: the L2 vCPU holds its host's state
# (a nested-virtualisation failure of the L0 emulator, not the guest's).
ksym() {
    a=$(echo "${1#0x}" | tr A-F a-f)
    case $a in ffffffff8???????) ;; *) return 0 ;; esac
    [ -r /proc/kallsyms ] || return 0
    # same-length lowercase hex compares as numbers
    best=$(awk -v a="$a" '$1 <= a && $1 > b { b = $1; n = $3 } END { if (n != "") print b, n }' /proc/kallsyms)
    [ -n "$best" ] || return 0
    set -- $best
    case $1 in 00000000*) return 0 ;; esac
    echo "$2+0x$(printf %x $((0x${a#ffffffff} - 0x${1#ffffffff})))"
}

# 1 s of KVM's exits in this host (tracefs): by reason and the guest's RIP
kvm_exits() {
    t=/sys/kernel/debug/tracing
    if [ ! -w "$t/events/kvm/kvm_exit/enable" ]; then
        echo "== no KVM tracepoints here (a kernel without tracing, or tracefs not mounted)"
        return
    fi
    echo > "$t/trace"
    echo 1 > "$t/events/kvm/kvm_exit/enable"
    sleep 1
    echo 0 > "$t/events/kvm/kvm_exit/enable"
    echo "== KVM exits in 1 s, by thread, reason and guest RIP (count first)"
    sed -n 's/^ *\(.*-[0-9]*\) *\[[0-9]*\].*kvm_exit: \(.*reason [^ ]*\) rip \(0x[0-9a-f]*\).*/\1: \2 rip \3/p' "$t/trace" |
        sort | uniq -c | sort -rn | head -12 | while read -r line; do
            s=$(ksym "${line##* }")
            echo "-- $line${s:+ (L1 kernel: $s)}"
        done
}

# KVM's rare events, traced from the start: injected exceptions and
# interrupts, emulated instructions (the last ones are shown by rare_show)
RARE="kvm_inj_exception kvm_inj_virq kvm_emulate_insn"
TRACE=/sys/kernel/debug/tracing
rare_start() {
    [ -w "$TRACE/events/kvm/kvm_exit/enable" ] || return 0
    echo > "$TRACE/trace"
    for e in $RARE; do echo 1 > "$TRACE/events/kvm/$e/enable"; done
}
rare_stop() {
    [ -w "$TRACE/events/kvm/kvm_exit/enable" ] || return 0
    for e in $RARE; do echo 0 > "$TRACE/events/kvm/$e/enable"; done
}
rare_show() {
    [ -r "$TRACE/trace" ] || return 0
    rare_stop
    echo "== KVM's injected exceptions and interrupts and emulated instructions since the start (last 40 of $(grep -vc '^#' "$TRACE/trace"))"
    grep -v '^#' "$TRACE/trace" | tail -40 | sed 's/^ */-- /'
    # the last emulated instruction's RIP, if it is the L1 kernel's own
    rip=$(grep -v '^#' "$TRACE/trace" | sed -n 's/.*kvm_emulate_insn: [0-9a-f]*:\([0-9a-f]*\):.*/\1/p' | tail -1)
    s=$(ksym "$rip")
    [ -z "$s" ] || echo "-- the last emulated instruction is at $rip: in the L1 kernel, $s (the L2 vCPU holds its host's RIP)"
}

# "fd pending total" of each userfaultfd of process $1, one line each
uffds() {
    for f in /proc/"$1"/fd/*; do
        [ "$(readlink "$f" 2>/dev/null)" = "anon_inode:[userfaultfd]" ] || continue
        echo "${f##*/} $(sed -n 's/^pending:[[:space:]]*//p' /proc/"$1"/fdinfo/"${f##*/}") $(sed -n 's/^total:[[:space:]]*//p' /proc/"$1"/fdinfo/"${f##*/}")"
    done
}

# The processes looked at: the QEMUs, and the program (with or without a VM of its own)
vm_pids() {
    pgrep -f qemu-system-x86_64
    echo "$prog"
}

facts() {
    rare_show
    kvm_exits
    pids=$(vm_pids)
    src= dst=
    for p in $pids; do thread_times "$p" > /tmp/watch.t0.$p; kvm_counters "$p" > /tmp/watch.k0.$p; uffds "$p" > /tmp/watch.u0.$p; done
    sleep 2
    for p in $pids; do
        case $(tr '\0' ' ' < /proc/"$p"/cmdline) in
            *-incoming*) role=destination dst=$p ;;
            *qemu-system*) role=source src=$p ;;
            *) role=program ;;
        esac
        echo "== $role$([ "$role" = program ] || echo ' QEMU'), pid $p: CPU time of its threads in 2 s (ticks of 1/$(getconf CLK_TCK) s), state now"
        thread_times "$p" | while read -r tid comm st u s g; do
            set -- $(grep "^$tid " /tmp/watch.t0.$p)
            echo "-- $comm: $st, user +$((u - ${4:-0})), system +$((s - ${5:-0})), guest +$((g - ${6:-0}))"
        done
        if [ -s /tmp/watch.k0.$p ]; then
            echo "== $role VM's KVM counters, change in 2 s (total)"
            kvm_counters "$p" | while read -r name v; do
                set -- $(grep "^$name " /tmp/watch.k0.$p)
                echo "-- $name +$((v - ${2:-0})) ($v)"
            done | tr '\n' ' '
            echo
        fi
        uffds "$p" | while read -r fd pending total; do
            set -- $(grep "^$fd " /tmp/watch.u0.$p)
            echo "== $role's userfaultfd (fd $fd): pending ${2:-?} then $pending, total ${3:-?} then $total (2 s apart)"
        done
    done
    if [ -n "$src" ] && [ -n "$dst" ]; then
        s_ram=$(dump_ram "$src" /tmp/watch.src.ram)
        d_ram=$(dump_ram "$dst" /tmp/watch.dst.ram)
        echo "== guest RAM, source ${s_ram:-gone}, destination ${d_ram:-gone}"
        # differing bytes per 4 KiB page: "page count" lines
        [ -n "$s_ram" ] && [ -n "$d_ram" ] &&
        cmp -l /tmp/watch.src.ram /tmp/watch.dst.ram 2>&1 | awk '
            /EOF/ { print "-- " $0; next }
            {
                pg = int(($1 - 1) / 4096); n[pg]++
                if (!(pg in seen)) { seen[pg] = 1; order[++k] = pg }
                # below 1 MiB, the bytes: "offset:source/destination" (octal, as cmp -l gives them)
                if (pg < 256 && n[pg] <= 16) b[pg] = b[pg] sprintf(" %x:%s/%s", ($1 - 1) % 4096, $2, $3)
            }
            END {
                low = 0; data = 0; high = 0
                for (i = 1; i <= k; i++) { pg = order[i]; if (pg < 256) low++; else if (pg < 25600) data++; else high++ }
                printf "-- pages that differ: %d below 1 MiB (boot code, BIOS), %d in 1-100 MiB (the test pattern), %d above\n", low, data, high
                for (i = 1; i <= k && i <= 24; i++) printf "-- page 0x%x: %d bytes differ%s\n", order[i], n[order[i]], b[order[i]]
            }'
        rm -f /tmp/watch.src.ram /tmp/watch.dst.ram
    fi
    rm -f /tmp/watch.*
}

rare_start
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
        facts
        kill -9 "$prog"
        pkill -9 -f qemu-system-x86_64
        exit 124
    fi
done
rare_stop
wait "$prog"
