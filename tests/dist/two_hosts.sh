#!/bin/bash
# Data-parallel training across two hosts: two network namespaces of this
# machine (its own test hosts, nothing else is reached) joined by a veth
# pair, each with its own address and host name. mpirun runs in host A and
# starts the second rank's daemon in host B through a launch agent (in place
# of ssh); the ranks talk over TCP only (--mca btl tcp,self). The result must
# be the one-process run's, as in data_parallel.sh. Needs root (ip netns);
# skipped (77) otherwise.
source "$(dirname "$0")/lib/mpi.bash"
[ "$(id -u)" -eq 0 ] || { echo "two_hosts: skipped: needs root for ip netns"; exit 77; }
command -v ip >/dev/null && command -v unshare >/dev/null || { echo "two_hosts: skipped: needs ip (iproute2) and unshare"; exit 77; }

A=lorac-a-$$ B=lorac-b-$$ NET=10.99.0
cleanup() {
    ip netns del "$A" 2>/dev/null
    ip netns del "$B" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
if ! { ip netns add "$A" && ip netns add "$B" && ip link add "va$$" type veth peer name "vb$$" &&
    ip link set "va$$" netns "$A" && ip link set "vb$$" netns "$B" &&
    ip -n "$A" addr add "$NET.1/24" dev "va$$" && ip -n "$B" addr add "$NET.2/24" dev "vb$$" &&
    ip -n "$A" link set "va$$" up && ip -n "$B" link set "vb$$" up &&
    ip -n "$A" link set lo up && ip -n "$B" link set lo up; } 2>"$T/netns.err"; then
    echo "two_hosts: skipped: cannot make network namespaces here: $(head -n 1 "$T/netns.err")"
    exit 77
fi
# the launch agent: "agent HOST COMMAND..." runs COMMAND inside HOST's namespace, under its own host name
cat >"$T/agent" <<AGENT
#!/bin/sh
host=\$1; shift
case \$host in $NET.1) ns=$A name=host-a;; $NET.2) ns=$B name=host-b;; *) echo "agent: unknown host \$host" >&2; exit 1;; esac
echo "\$host" >>"$T/agent.log"
exec ip netns exec "\$ns" unshare --uts sh -c "hostname \$name; \$*"
AGENT
chmod +x "$T/agent"

tiny_sms_fixture
cls=(--model "$tiny" --tokenizer "$T/vocab.txt" --data "$T/sms.tsv" --max-len 16 --batch 8 --grad-accum 2 --seed 5
    --lr 5e-3 --epochs 4 --eval-every 3 --threads 1)
"$BIN" train "${cls[@]}" --out "$T/one" >/dev/null 2>"$T/one.err" || { bad "one process"; cat "$T/one.err" >&2; }
mpi=(mpirun -np 2 --host "$NET.1,$NET.2" --mca plm_rsh_agent "$T/agent" --mca btl tcp,self
    --mca btl_tcp_if_include "$NET.0/24" --mca oob_tcp_if_include "$NET.0/24" --bind-to none)
timeout 300 ip netns exec "$A" unshare --uts sh -c 'hostname host-a; exec "$@"' sh "${mpi[@]}" \
    "$BIN" train "${cls[@]}" --out "$T/two" >/dev/null 2>"$T/two.err" || { bad "two hosts"; cat "$T/two.err" >&2; }
if grep -q "data parallel: 2 ranks on 2 hosts: host-a (rank 0), host-b (rank 1)" "$T/two.err" &&
    grep -qx "$NET.2" "$T/agent.log"; then ok; else bad "the ranks did not run on the two hosts"; grep -i "data parallel\|error" "$T/two.err" >&2; fi
grep "data parallel" "$T/two.err"
same "$T/one" "$T/two" "GPT-2 classifier over TCP between two hosts vs one process"
summary two_hosts
