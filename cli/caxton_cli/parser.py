"""The command tree of both front doors, one function per noun.

To add a command: one `tree.verb(...)` call in its noun's function, naming the handler
as "module:function" (the module is imported only when that command runs) and giving
an example. A new noun is a new function here, called from `build`.
"""

from __future__ import annotations

import argparse

from caxton_cli.verbs import Parsers, Tree, add_wait_flags, add_watch_flags

PRIORITIES = ("low", "normal", "high")


def build(prog: str) -> argparse.ArgumentParser:
    tree = Tree(prog, "kubectl" if prog.startswith("kubectl") else "direct")
    parser = argparse.ArgumentParser(
        prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter,
        description=("Operate a CaxtonCluster through the Kubernetes API." if tree.kubectl
                     else "Operate Caxton nodes and clusters."),
        epilog=_root_epilog(tree))
    tree.global_flags(parser, on_root=True)
    parser.set_defaults(front_door=tree.mode)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for noun in (_cluster, _agents, _queue, _memory, _trace, _emergency, _circuit_breaker, _send, _resources,
                 _backup, _incident):
        noun(tree, sub)
    if not tree.kubectl:  # these act on this machine, not on a CaxtonCluster
        _server(tree, sub)
        _security(tree, sub)
        _local(tree, sub)
    else:
        _cluster_security(tree, sub)
    _completion(tree, sub)
    return parser


def _root_epilog(tree: Tree) -> str:
    if tree.kubectl:
        return ("examples:\n"
                f"  {tree.prog} cluster status -n prod --cluster demo\n"
                f"  {tree.prog} -n prod memory stats\n"
                f"  {tree.prog} cluster status --node demo-2 -o json\n\n"
                "exit codes: 0 done, 1 refused, 2 bad input or unreachable, 3 problem found or timed out, "
                "4 not found")
    return ("examples:\n"
            f"  {tree.prog} --api http://127.0.0.1:8080 cluster members\n"
            f"  {tree.prog} agents list -o json\n\n"
            "exit codes: 0 done, 1 refused, 2 bad input or unreachable, 3 problem found or timed out, 4 not found")


def _cluster(tree: Tree, sub: Parsers) -> None:
    cluster = tree.group(sub, "cluster", help="cluster membership and health")
    run = "caxton_cli.cluster_commands"
    members = tree.verb(cluster, "members", run=f"{run}:members", help="members with state, last seen and agents",
                        examples=["cluster members", "# follow changes for a minute\ncluster members --watch "
                                  "--timeout 60"])
    add_watch_flags(members)
    status = tree.verb(cluster, "status", run=f"{run}:status", help="health, quorum and read-only state",
                       examples=["cluster status", *(["# the minority side of a partition\ncluster status "
                                                      "--node demo-2"] if tree.kubectl else [])])
    add_watch_flags(status)
    tree.verb(cluster, "performance", run=f"{run}:performance", help="latencies against their targets",
              examples=["cluster performance"])
    tree.verb(cluster, "detect-partition", run=f"{run}:detect_partition",
              help="is the cluster partitioned, and which side is this node on",
              examples=["cluster detect-partition", "cluster detect-partition -o json",
                        "# every node's view and the plan to resolve (exit 3 if partitioned)\n"
                        "cluster detect-partition --resolve-strategy manual",
                        "# resolve for the majority at once\ncluster detect-partition --resolve-strategy auto"]
              ).add_argument("--resolve-strategy", choices=("manual", "auto"),
                             help="manual: print the plan; auto: resolve for the majority side now")
    _partition_verbs(tree, cluster)
    tree.verb(cluster, "ping", run=f"{run}:ping", help="reach a member's API",
              examples=["cluster ping demo-2" if tree.kubectl else "cluster ping node-3"]
              ).add_argument("member", metavar="NODE", help="the member to reach")
    watch = tree.verb(cluster, "watch", run=f"{run}:watch", help="follow membership and partition events",
                      examples=["cluster watch --timeout 600"])
    watch.add_argument("--timeout", type=float, default=300.0, help="stop after this many seconds (default 300)")
    watch.add_argument("--interval", type=float, default=1.0)
    shed = tree.verb(cluster, "shed-load", run="caxton_cli.capacity:shed_load",
                     help="suspend agents (low priority, then the busiest) until the message rate drops by a share"
                     + (" (on every node)" if tree.kubectl else ""),
                     examples=["cluster shed-load --percentage 20", "# undo it\nagents resume --priority low"])
    shed.add_argument("--percentage", type=float, required=True, help="share of the recent message rate to shed")
    tree.verb(cluster, "verify", run=f"{run}:verify",
              help="compare state across members and name every difference" + (
                  " (every node's view)" if tree.kubectl else ""),
              examples=["cluster verify", "# also each node's state on disk and its modules\ncluster verify --deep",
                        *(["# one node's view\ncluster verify --node demo-1"] if tree.kubectl else [])]
              ).add_argument("--deep", action="store_true", help="also run SQLite's integrity check on every "
                             "node's state and check each module against its sha256")
    if tree.kubectl:
        scale = tree.verb(cluster, "scale", run="caxton_cli.declarative:cluster_scale",
                          help="change the number of nodes (scale-in moves agents first)",
                          examples=["cluster scale --replicas 5 -n prod --cluster demo"])
        scale.add_argument("--replicas", type=int, required=True)
        add_wait_flags(scale, 300.0)
        stop = tree.verb(cluster, "stop", run="caxton_cli.hibernation:stop",
                         help="hibernate: stop every node, keep volumes and status (phase Hibernated)",
                         examples=["cluster stop --all", "cluster stop --all --no-wait"])
        stop.add_argument("--all", action="store_true", help="every node (required: the cluster stops as one)")
        add_wait_flags(stop, 300.0)
        start = tree.verb(cluster, "start", run="caxton_cli.hibernation:start",
                          help="bring a hibernated cluster back; --verify runs cluster verify before it says so",
                          examples=["cluster start --verify"])
        start.add_argument("--verify", action="store_true", help="run `cluster verify` once every member is alive")
        start.add_argument("--timeout", type=float, default=300.0, help="seconds to wait (default: %(default)s)")
        _upgrade(tree, cluster)
        _capacity(tree, cluster)


def _capacity(tree: Tree, cluster: Parsers) -> None:
    """`cluster rebalance|add-node|remove`: the operator moves agents (docs/rebalance.md)."""
    run = "caxton_cli.capacity"
    rebalance = tree.verb(cluster, "rebalance", run=f"{run}:rebalance",
                          help="move agents so no node is over the load threshold (the plan is in status)",
                          examples=["# the plan only: AGENT FROM TO REASON, nothing moves\n"
                                    "cluster rebalance --strategy least-loaded --dry-run",
                                    "cluster rebalance --strategy least-loaded --wait -o json"])
    rebalance.add_argument("--strategy", choices=("least-loaded",), default="least-loaded")
    rebalance.add_argument("--dry-run", action="store_true", help="print the plan, move nothing")
    rebalance.add_argument("--wait", action="store_true", help="follow the moves until the rebalance is done")
    rebalance.add_argument("--timeout", type=float, default=600.0, help="seconds to wait (default: %(default)s)")
    add = tree.verb(cluster, "add-node", run=f"{run}:add_node",
                    help="add nodes (scale subresource); wait until they are alive and hold agents",
                    examples=["cluster add-node", "cluster add-node --count 2 --timeout 600"])
    add.add_argument("address", nargs="?", metavar="HOST:PORT",
                     help="the runbook's address of the new node; on Kubernetes the StatefulSet names and "
                          "addresses it (the next ordinal), so it is not used, and the command says so")
    add.add_argument("--count", type=int, default=1, help="how many nodes to add (default: 1)")
    add_wait_flags(add, 600.0)
    remove = tree.verb(cluster, "remove", run=f"{run}:remove_node",
                       help="drain a node and remove it (highest ordinal: scale down; "
                            "otherwise it is replaced by a fresh member)",
                       examples=["cluster remove demo-1",
                                 "# a failed node that will not come back: forget it without draining\n"
                                 "cluster remove --node demo-1 --force"])
    remove.add_argument("member", nargs="?", metavar="NODE", help="the node (pod); or give it with --node")
    remove.add_argument("--force", action="store_true",
                        help="do not drain: every member forgets it (force-leave), then it is replaced")
    add_wait_flags(remove, 600.0)


def _resources(tree: Tree, sub: Parsers) -> None:
    tree.verb(sub, "resources", run="caxton_cli.capacity:resources",
              help="NODE CPU MEMORY AGENTS per node, from the nodes' own measurements"
                   + (" (every node)" if tree.kubectl else ""),
              examples=["resources", "resources -o json"])


def _partition_verbs(tree: Tree, cluster: Parsers) -> None:
    run = "caxton_cli.incident"
    tree.verb(cluster, "compare-state", run=f"{run}:compare_state",
              help="what each side of a partition holds that the other lacks",
              examples=["cluster compare-state", "cluster compare-state -o json"])
    resolve = tree.verb(cluster, "resolve-partition", run=f"{run}:resolve_partition",
                        help="resolve a partition for one side: the other side's queued writes become dead "
                        "letters (reason partition_resolved) instead of being replayed at the heal",
                        examples=["cluster resolve-partition --prefer majority",
                                  "cluster resolve-partition --prefer minority -o json"])
    resolve.add_argument("--prefer", choices=("majority", "minority"), required=True)


def _upgrade(tree: Tree, cluster: Parsers) -> None:
    """`cluster upgrade ...` and `cluster rolling-restart`: CaxtonUpgrades the operator carries out."""
    run = "caxton_cli.upgrades"
    upgrade = tree.group(cluster, "upgrade", help="canary-then-rolling upgrades (a CaxtonUpgrade)")
    start = tree.verb(upgrade, "start", run=f"{run}:start",
                      help="create a CaxtonUpgrade: a canary, then batches, with health gates",
                      examples=["cluster upgrade start --version v1.3.0 --canary-duration 10m --batch-size 2",
                                "# no canary hold; follow it to the end (exit 1 if it rolls back)\n"
                                "cluster upgrade start --version 1.3.0 --canary-duration 0s --wait --timeout 900"])
    start.add_argument("--version", required=True, help="the version to go to, e.g. v1.3.0")
    start.add_argument("--canary-duration", default="10m", help="how long the canary is judged (0s: no hold)")
    start.add_argument("--batch-size", type=int, default=1, help="nodes per batch after the canary")
    start.add_argument("--no-auto-rollback", action="store_true", help="on a failed gate, stop and hold (Failed)")
    start.add_argument("--allow-downgrade", action="store_true", help="allow a version lower than the cluster's")
    start.add_argument("--max-error-rate", help="canary gate, e.g. 1%%")
    start.add_argument("--max-p99-latency", help="canary gate, e.g. 10ms")
    start.add_argument("--min-messages", type=int, help="messages before the canary's metrics count")
    start.add_argument("--name", help="the CaxtonUpgrade's name (default <cluster>-to-<version>)")
    _wait_opt_in(start)
    status = tree.verb(upgrade, "status", run=f"{run}:status",
                       help="PHASE, PROGRESS, CANARY and ETA, then one line per gate",
                       examples=["cluster upgrade status", "cluster upgrade status --watch",
                                 "cluster upgrade status --name demo-to-1-3-0 -o json"])
    status.add_argument("--name", help="the CaxtonUpgrade (default: the one holding the cluster, else the latest)")
    status.add_argument("-w", "--watch", action="store_true", help="print again on every change until it ends")
    status.add_argument("--timeout", type=float, default=3600.0, help="stop watching after this many seconds")
    for verb, help_text, wait in (("rollback", "put every upgraded node back on the old version", 900.0),
                                  ("pause", "hold the upgrade where it is: no pod changes until resumed", 120.0),
                                  ("resume", "continue a paused upgrade", 120.0),
                                  ("promote", "end the canary hold now and roll on", 120.0)):
        p = tree.verb(upgrade, verb, run=f"{run}:{verb}", help=help_text,
                      examples=[f"cluster upgrade {verb}", f"cluster upgrade {verb} --name demo-to-1-3-0 --no-wait"])
        p.add_argument("--name", help="the CaxtonUpgrade (default: the one holding the cluster)")
        add_wait_flags(p, wait)
    restart = tree.verb(cluster, "rolling-restart", run=f"{run}:rolling_restart",
                        help="restart every node through the upgrade roller (drained, gated), same version",
                        examples=["cluster rolling-restart --reason 'new node kernel' --wait"])
    restart.add_argument("--reason", required=True, help="why (shown in the Events)")
    restart.add_argument("--batch-size", type=int, default=1)
    restart.add_argument("--name", help="the CaxtonUpgrade's name (default <cluster>-restart-<time>)")
    _wait_opt_in(restart)


def _wait_opt_in(parser: argparse.ArgumentParser) -> None:
    """Creating an upgrade returns at once unless --wait: it may take hours."""
    add_wait_flags(parser, 1800.0)
    parser.set_defaults(no_wait=True)
    parser.add_argument("--wait", dest="no_wait", action="store_false", help="wait until it succeeds or rolls back")


def _agents(tree: Tree, sub: Parsers) -> None:
    agents = tree.group(sub, "agents", help="Wasm agents" + (" of a CaxtonCluster" if tree.kubectl else " on a node"),
                        aliases=["agent"])
    run = "caxton_cli.node_commands"
    tree.verb(agents, "list", run=f"{run}:agents_list", help="agents with state, queue and latency"
              + (" (every node)" if tree.kubectl else ""), examples=["agents list", "agents list -o json"])
    if tree.kubectl:  # declarative: a CaxtonAgent the operator places
        deploy = tree.verb(agents, "deploy", run="caxton_cli.declarative:agents_deploy",
                           help="deploy a Wasm module as a CaxtonAgent (with a ConfigMap holding it)",
                           examples=["agents deploy echo.wasm --id echo --replicas 2 -n prod"])
        deploy.add_argument("--replicas", type=int, default=1)
        add_wait_flags(deploy, 120.0)
        remove = tree.verb(agents, "remove", run="caxton_cli.declarative:agents_remove",
                           help="delete a CaxtonAgent and its replicas", examples=["agents remove echo -n prod"])
        add_wait_flags(remove, 60.0)
    else:
        deploy = tree.verb(agents, "deploy", run=f"{run}:agents_deploy", help="deploy a Wasm module as an agent",
                           examples=["agents deploy echo.wasm --id echo --memory 16Mi --priority low"])
        remove = tree.verb(agents, "remove", run=f"{run}:agents_remove", help="remove an agent",
                           examples=["agents remove echo"])
    remove.add_argument("id")
    deploy.add_argument("module", help="path of the .wasm file")
    deploy.add_argument("--id", required=True, help="the agent's name")
    deploy.add_argument("--memory", help="memory limit, e.g. 16Mi")
    deploy.add_argument("--fuel", type=int, help="fuel per message")
    deploy.add_argument("--deadline", help="time per message, e.g. 10ms")
    deploy.add_argument("--priority", choices=PRIORITIES, default="normal")
    tree.verb(agents, "slow", run=f"{run}:agents_slow", help="agents whose P99 exceeds a threshold",
              examples=["agents slow --threshold 100ms"]).add_argument("--threshold", default="100ms")
    suspend = tree.verb(agents, "suspend", run=f"{run}:agents_suspend_resume", help="suspend an agent",
                        examples=["agent suspend processor-5", "# every running agent of low priority\n"
                                  "agents suspend --priority low"])
    suspend.add_argument("id", nargs="?")
    suspend.add_argument("--priority", choices=PRIORITIES, help="suspend every running agent of this priority")
    resume = tree.verb(agents, "resume", run=f"{run}:agents_suspend_resume", help="resume an agent",
                       examples=["agent resume processor-5", "# undo shed-load\nagents resume --priority low"])
    resume.add_argument("id", nargs="?")
    resume.add_argument("--priority", choices=PRIORITIES, help="resume every suspended agent of this priority")


def _queue(tree: Tree, sub: Parsers) -> None:
    queue = tree.group(sub, "queue", help="message queues")
    run = "caxton_cli.node_commands"
    stats = tree.verb(queue, "stats", run=f"{run}:queue_stats", help="queue depth per agent, dead letters"
                      + (" (every node)" if tree.kubectl else ""),
                      examples=["queue stats", "# watch the backlog\nqueue stats --watch --interval 5"])
    add_watch_flags(stats)
    tree.verb(queue, "drain", run=f"{run}:queue_drain", help="wait for the backlog, dead-letter what is left",
              examples=["queue drain --timeout 60s"]).add_argument("--timeout", default="60s")


def _memory(tree: Tree, sub: Parsers) -> None:
    memory = tree.group(sub, "memory", help="memory use")
    tree.verb(memory, "stats", run="caxton_cli.node_commands:memory_stats",
              help="agent memory against limits" + (" (every node, with totals)" if tree.kubectl else ""),
              examples=["memory stats"])
    tree.verb(memory, "gc", run="caxton_cli.capacity:memory_gc",
              help="give memory back: idle agents restarted (with their snapshot), WAL truncated; bytes freed"
              + (" per node" if tree.kubectl else ""),
              examples=["memory gc", "# every idle agent, not only those that shrink\nmemory gc --aggressive -o json"]
              ).add_argument("--aggressive", action="store_true", help="restart every idle agent")


def _trace(tree: Tree, sub: Parsers) -> None:
    trace = tree.verb(sub, "trace", run="caxton_cli.node_commands:trace",
                      help="the messages of a conversation, or the error cascades of a time window",
                      examples=["trace --conversation-id abc-123",
                                "# conversations whose failures spread across agents, first failure named\n"
                                "trace --error-cascade --last 5m"])
    trace.add_argument("--conversation-id")
    trace.add_argument("--error-cascade", action="store_true", help="find failures that spread agent to agent")
    trace.add_argument("--last", default="5m", help="with --error-cascade: the window (default 5m)")


def _incident(tree: Tree, sub: Parsers) -> None:
    """profile, debug dump, analyze messages, config diff: the runbook's debug commands."""
    run = "caxton_cli.incident"
    prof = tree.verb(sub, "profile", run=f"{run}:profile", help="an agent's handling over a window, on every "
                     "node that runs it: messages, rate, failures, latency, memory",
                     examples=["profile --agent processor-1 --duration 60s"])
    prof.add_argument("--agent", required=True)
    prof.add_argument("--duration", default="60s", help="the window (default 60s)")
    debug = tree.group(sub, "debug", help="collect state for a bug report")
    dump = tree.verb(debug, "dump", run="caxton_cli.debug_dump:dump",
                     help="a .tar.gz of every node's config, status, members, agents, queue, metrics and logs "
                     "(secrets redacted)", examples=["debug dump --output caxton-debug.tar.gz",
                                                     "# one node only\ndebug dump --output demo-2.tar.gz --node demo-2"
                                                     if tree.kubectl else "debug dump --output node.tar.gz -o json"])
    dump.add_argument("--output", dest="archive", required=True, help="the .tar.gz to write")
    analyze = tree.group(sub, "analyze", help="look for patterns")
    messages = tree.verb(analyze, "messages", run=f"{run}:analyze_messages",
                         help="failed messages matching a pattern, counted by agent, performative and error",
                         examples=['analyze messages --pattern "timeout|error" --last 1h'])
    messages.add_argument("--pattern", default=".", help="regular expression on the error and content")
    messages.add_argument("--last", default="1h", help="the window (default 1h)")
    config = tree.group(sub, "config", help="node configuration")
    diff = tree.verb(config, "diff", run=f"{run}:config_diff",
                     help="each node's running configuration against a file, by key (exit 3 on drift)",
                     examples=["config diff --baseline /etc/caxton/config.yaml"])
    diff.add_argument("--baseline", required=True, help="a node configuration file (YAML)")


def _emergency(tree: Tree, sub: Parsers) -> None:
    emergency = tree.group(sub, "emergency", help="emergency procedures")
    stop = tree.verb(emergency, "stop", run="caxton_cli.node_commands:emergency_stop",
                     help="suspend every agent now",
                     examples=["emergency stop --all-agents", "# every node\nemergency stop --cluster",
                               "emergency stop --preserve-state --dump-to /backup/emergency/"])
    stop.add_argument("--all-agents", action="store_true", help="(default) every agent on the node")
    # The runbook's bare `--cluster`: every node. In the plugin `--cluster NAME` still names the
    # CaxtonCluster (and the plugin stops every node anyway, unless --node).
    stop.add_argument("--cluster", nargs="?", const="*", default=argparse.SUPPRESS if tree.kubectl else None,
                      metavar="NAME" if tree.kubectl else None,
                      help=("the CaxtonCluster; alone: every node (the default here)" if tree.kubectl
                            else "every member of the cluster, not only this node"))
    stop.add_argument("--preserve-state", action="store_true")
    stop.add_argument("--dump-to", help="directory for a state snapshot, inside the node's dump root "
                      "(node.dump_dir, default <data_dir>/dumps); relative paths are taken under it")


def _circuit_breaker(tree: Tree, sub: Parsers) -> None:
    breaker = tree.group(sub, "circuit-breaker", help="pause or resume all delivery")
    run = "caxton_cli.node_commands:circuit_breaker"
    tree.verb(breaker, "activate", run=run, help="pause delivery to every agent",
              examples=["circuit-breaker activate --all"]).add_argument(
        "--all", action="store_true", help="(default) every agent")
    reset = tree.verb(breaker, "reset", run=run, help="resume delivery (at once, or ramping up)",
                      examples=["circuit-breaker reset",
                                "# admit a rising share of messages, full rate after 10 minutes\n"
                                "circuit-breaker reset --gradual --duration 10m"])
    reset.add_argument("--gradual", action="store_true", help="ramp the admitted rate up over --duration")
    reset.add_argument("--duration", help="with --gradual: how long the ramp takes (default 10m)")


def _send(tree: Tree, sub: Parsers) -> None:
    msg = tree.verb(sub, "send", run="caxton_cli.node_commands:send", help="send one message to an agent",
                    examples=["send --to echo --content '{\"ping\": 1}' --conversation-id abc-123"])
    msg.add_argument("--to", required=True)
    msg.add_argument("--sender", default="cli")
    msg.add_argument("--performative", default="request")
    msg.add_argument("--content", default="null", help="JSON (or a plain string)")
    msg.add_argument("--conversation-id")


def _backup(tree: Tree, sub: Parsers) -> None:
    """Backup and Recovery (docs/backup.md): CaxtonBackups, and restoring from them."""
    run = "caxton_cli.backups"
    if not tree.kubectl:  # on a node's machine (and in the restoring pods): one data directory
        backup = tree.group(sub, "backup", help="restore a node's data directory from a backup", connects=False)
        node = tree.verb(backup, "restore", run=f"{run}:restore_node", connects=False,
                         help="verify a whole backup, then restore one node's state into an empty directory",
                         examples=["# S3 credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY\n"
                                   "backup restore --id backup-20240115-0200 --target /var/lib/caxton/ "
                                   "--destination s3://backups/caxton/ --endpoint https://s3.example.com "
                                   "--replicas 3 --ordinal 0"])
        node.add_argument("--id", required=True, help="the backup's id")
        node.add_argument("--target", required=True, help="the node's data directory (empty, or restored before)")
        node.add_argument("--destination", required=True, help="s3://bucket/prefix/ or pvc://claim/path/")
        node.add_argument("--endpoint", help="the S3 API's URL (s3:// destinations)")
        node.add_argument("--region", default="us-east-1")
        node.add_argument("--mount", help="where a pvc:// destination's claim is mounted")
        node.add_argument("--replicas", type=int, required=True, help="the size of the cluster restored into")
        which = node.add_mutually_exclusive_group(required=True)
        which.add_argument("--ordinal", type=int, help="the node (0-based) of the backup to restore")
        which.add_argument("--pod", help="a StatefulSet pod name: its ordinal picks the node")
        node.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
        serve = tree.verb(backup, "serve", run=f"{run}:serve_volume", connects=False,
                          help="serve a backup directory on a mounted volume over HTTP (the operator's "
                               "pvc:// destinations)",
                          examples=["backup serve --dir /var/lib/caxton-backup/nightly --listen 0.0.0.0:8080 "
                                    "--token-file /etc/caxton/api/token"])
        serve.add_argument("--dir", required=True, help="the destination's directory: backups are <dir>/<id>/")
        serve.add_argument("--listen", default="0.0.0.0:8080", help="HOST:PORT")
        serve.add_argument("--token-file", required=True, help="the token every call must carry")
        return
    backup = tree.group(sub, "backup", help="back up a CaxtonCluster (CaxtonBackup) and restore from it")
    create = tree.verb(backup, "create", run=f"{run}:create", help="back up every node of the cluster (a "
                       "CaxtonBackup): state, agents' modules and limits, queued messages",
                       examples=["backup create --type full --destination s3://backups/caxton/20240115/ "
                                 "--compress --endpoint https://s3.example.com --credentials-secret s3-creds",
                                 "# follow it to the end, a progress line per change (exit 1 if it fails)\n"
                                 "backup create --destination s3://backups/caxton/ --endpoint http://minio:9000 "
                                 "--credentials-secret s3-creds --id before-upgrade --wait"])
    create.add_argument("--type", default="full", help="full (the only type)")
    create.add_argument("--destination", required=True, help="s3://bucket/prefix/ or pvc://claim/path/")
    create.add_argument("--endpoint", help="the S3 API's URL")
    create.add_argument("--region", default="us-east-1")
    create.add_argument("--credentials-secret", help="a Secret with accessKeyId and secretAccessKey")
    create.add_argument("--compress", action="store_true", help="store objects compressed with zstd")
    create.add_argument("--include-secrets", action="store_true",
                        help="also store the CA, gossip key and API token (read the docs first)")
    create.add_argument("--id", help="the backup's id (default backup-YYYYMMDD-HHMMSS, UTC)")
    _wait_opt_in(create)
    tree.verb(backup, "list", run=f"{run}:list_backups", help="CaxtonBackups with phase, size and destination",
              examples=["backup list", "backup list --cluster demo -o json"])
    check = tree.verb(backup, "verify", run=f"{run}:verify", help="re-read every object, check every checksum and "
                      "each SQLite snapshot's integrity; one line per problem, exit 3 if any",
                      examples=["backup verify --id backup-20240115-0200"])
    check.add_argument("--id", required=True)
    restore = tree.verb(backup, "restore", run=f"{run}:restore",
                        help="verify the backup, then create a CaxtonCluster bootstrapped from it",
                        examples=["backup restore --id backup-20240115-0200",
                                  "# under another name; wait until it runs\n"
                                  "backup restore --id backup-20240115-0200 --target demo-restored --wait"])
    restore.add_argument("--id", required=True)
    restore.add_argument("--target", help="the new CaxtonCluster's name (default: the backed-up cluster's)")
    _wait_opt_in(restore)
    delete = tree.verb(backup, "delete", run=f"{run}:delete", help="delete a CaxtonBackup (--purge: and its objects)",
                       examples=["backup delete --id backup-20240115-0200 --purge"])
    delete.add_argument("--id", required=True)
    delete.add_argument("--purge", action="store_true", help="also delete the backup's objects at the destination")


def _server(tree: Tree, sub: Parsers) -> None:
    server = tree.group(sub, "server", help="run a Caxton node", connects=False)
    parser = tree.verb(server, "start", run="caxton_cli.server:start", help="start a node with a config file",
                       connects=False, examples=["server start --bootstrap --config /etc/caxton/config.yaml",
                                                 "server start --join node-1:7946 --config /etc/caxton/config.yaml"])
    parser.add_argument("--config", default="/etc/caxton/config.yaml",
                        help="node configuration (YAML, runbook keys; default /etc/caxton/config.yaml)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--bootstrap", action="store_true", help="start a new cluster (the seed node)")
    mode.add_argument("--join", action="append", metavar="HOST:7946", help="join through this peer")
    parser.add_argument("--node-id", help="node id (default: node.id, else the hostname)")


def _security(tree: Tree, sub: Parsers) -> None:
    security = tree.group(sub, "security", help="certificates and keys", connects=False)
    run = "caxton_cli.security"
    _init_ca(tree, security)
    cert = tree.verb(security, "issue-cert", run=f"{run}:issue_cert", help="issue a node certificate (CN = node id)",
                     connects=False, examples=["security issue-cert --ca-dir /etc/caxton/certs --node-id node-1 "
                                               "--dns node-1.example.com --output /etc/caxton/certs"])
    cert.add_argument("--ca-dir", required=True)
    cert.add_argument("--node-id", required=True)
    cert.add_argument("--output", required=True)
    cert.add_argument("--dns", action="append")
    cert.add_argument("--ip", action="append")
    cert.add_argument("--days", type=int, default=90)
    cert.add_argument("-o", dest="output_format", choices=("table", "json", "yaml"), default="table")
    _cert_status(tree, security)
    tree.verb(security, "gossip-key", run=f"{run}:gossip_key", help="generate a 256-bit gossip encryption key",
              connects=False, examples=["security gossip-key --output /etc/caxton/gossip.key"]).add_argument(
        "--output", help="file to write (default: print)")


def _init_ca(tree: Tree, security: Parsers) -> None:
    """`security init-ca`: a CA in a directory; with the plugin, one to hand to `rotate-certs`."""
    ca = tree.verb(security, "init-ca", run="caxton_cli.security:init_ca", connects=tree.kubectl,
                   help="create a CA (ca.crt, ca.key) in a directory" + (
                       ": your own CA for `security rotate-certs --ca-cert --ca-key`" if tree.kubectl else ""),
                   examples=["security init-ca --output /etc/caxton/certs/",
                             *(["security init-ca --output ./ca && security rotate-certs --ca-cert ./ca/ca.crt "
                                "--ca-key ./ca/ca.key"] if tree.kubectl else [])])
    # --output is the runbook's directory; the output format stays -o (the global flag, with the plugin).
    ca.add_argument("--output", dest="ca_dir", required=True, help="directory for ca.crt and ca.key")
    ca.add_argument("--common-name", default="caxton-cluster-ca")
    ca.add_argument("--days", type=int, default=3650)
    ca.add_argument("--force", action="store_true", help="replace a CA already in the directory")
    if not tree.kubectl:
        ca.add_argument("-o", dest="output_format", choices=("table", "json", "yaml"), default="table")


def _cert_status(tree: Tree, security: Parsers) -> None:
    status = tree.verb(security, "cert-status", run="caxton_cli.cert_status:cert_status",
                       help="each node's certificate expiry and the CAs it trusts, as the nodes serve them",
                       examples=["security cert-status", "security cert-status -o json",
                                 "security cert-status --renew-before 240h"])
    status.add_argument("--renew-before", help="WARNING inside this window (default: the cluster's "
                        "tls.renewBefore" + (")" if tree.kubectl else ", else 720h)"))


def _cluster_security(tree: Tree, sub: Parsers) -> None:
    """`kubectl caxton security ...`: rotations the operator carries out, and cert-status."""
    security = tree.group(sub, "security", help="certificates and keys of a CaxtonCluster")
    _cert_status(tree, security)
    _init_ca(tree, security)
    run = "caxton_cli.rotations"
    certs = tree.verb(security, "rotate-certs", run=f"{run}:rotate_certs",
                      help="replace the cluster CA in three confirmed phases, without a restart",
                      examples=["# a fresh operator CA\nsecurity rotate-certs",
                                "# your own CA\nsecurity rotate-certs --ca-cert ca.crt --ca-key ca.key --timeout 900"])
    certs.add_argument("--ca-cert", help="PEM file of the new CA certificate (with --ca-key)")
    certs.add_argument("--ca-key", help="PEM file of its private key")
    add_wait_flags(certs, 600.0)
    for verb, what in (("rotate-gossip-key", "gossip key"), ("rotate-token", "API token")):
        ring = tree.verb(security, verb, run=f"{run}:{verb.replace('-', '_')}",
                         help=f"replace the {what}: add, make primary, drop the old one, each confirmed by every node",
                         examples=[f"security {verb}", f"security {verb} --no-wait -o json"])
        add_wait_flags(ring, 600.0)


def _local(tree: Tree, sub: Parsers) -> None:
    local = sub.add_parser("local", help="a real Kubernetes control plane on this machine",
                           description="a real Kubernetes control plane on this machine")
    local.add_argument("--state-dir", help="where the instance keeps its state "
                       "(default: $CAXTON_LOCAL_DIR, else $XDG_STATE_HOME or ~/.local/state, /caxton/local)")
    verbs = local.add_subparsers(dest="verb", metavar="COMMAND", required=True)
    run = "caxton_cli.local"
    up = tree.verb(verbs, "up", run=f"{run}:cmd_up", help="build (first time) and start the control plane; "
                   "idempotent", connects=False, examples=["local up", "local up --nodes 3 --sample"])
    up.add_argument("--port", type=int, help="apiserver port on 127.0.0.1 (first up only; default 6443)")
    up.add_argument("--nodes", type=int, help="process Nodes to register (first up only; default 3)")
    up.add_argument("--crash-backoff", type=float,
                    help="first CrashLoopBackOff delay in seconds (first up only; default 10)")
    up.add_argument("--sample", action="store_true", help="also run the sample workload")
    up.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
    tree.verb(verbs, "down", run=f"{run}:cmd_down", help="stop every process of the control plane and its pods",
              connects=False, examples=["local down", "local down --purge"]).add_argument(
        "--purge", action="store_true", help="also delete the state directory")
    tree.verb(verbs, "status", run=f"{run}:cmd_status", help="components, pids, health and memory",
              connects=False, examples=["local status -o json"]).add_argument(
        "-o", "--output", choices=("table", "json", "yaml"), default="table")
    tree.verb(verbs, "kubeconfig", run=f"{run}:cmd_kubeconfig", help="print the admin kubeconfig's path",
              connects=False, examples=["local kubeconfig"])
    tree.verb(verbs, "env", run=f"{run}:cmd_env", help="print shell exports for KUBECONFIG and the pinned "
              "kubectl/helm", connects=False, examples=["local env", '# in this shell\neval "$({prog} local env)"'])


def _completion(tree: Tree, sub: Parsers) -> None:
    name = "kubectl-caxton" if tree.kubectl else "caxton"
    tree.verb(sub, "completion", run="caxton_cli.completion:print_script", connects=False,
              help="print a shell completion script (bash or zsh)",
              examples=["# bash, this session\nsource <({prog} completion bash)",
                        "# zsh, every session\n{prog} completion zsh > \"${fpath[1]}/_" + name + '"']
              ).add_argument("shell", choices=("bash", "zsh"))
