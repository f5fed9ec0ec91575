"""Checks the minimum Rust versions the README states, per feature, against the lock file:
no dependency a feature builds may declare a newer `rust-version`, and the package's own
`rust-version` is the library's. Run by .ci/run; needs only cargo and Python 3."""

import json
import subprocess
import sys

# What the README and Cargo.toml state: the feature, and the oldest Rust it builds with.
STATED = {"": "1.85", "docker": "1.85", "disk": "1.85", "journald": "1.85", "otlp": "1.85", "serve": "1.85",
          "client": "1.88", "openwhisk": "1.88", "nats": "1.89", "kubernetes": "1.89", "cli": "1.89"}


def version(text):
    return tuple(int(part) for part in text.split("."))[:2]


def needed(feature):
    """The newest rust-version among the crates a build with `feature` compiles."""
    args = ["cargo", "metadata", "--format-version", "1", "--locked", "--no-default-features"]
    if feature:
        args += ["--features", feature]
    meta = json.loads(subprocess.run(args, check=True, capture_output=True).stdout)
    packages = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    seen, todo = set(), [meta["resolve"]["root"]]
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        for dep in nodes[node]["deps"]:
            # Dev-dependencies are not built for a user; build scripts' dependencies are.
            if any(kind["kind"] != "dev" for kind in dep["dep_kinds"]):
                todo.append(dep["pkg"])
    # cargo metadata also lists optional dependencies that a weak feature (`dep?/std`)
    # names but nothing enables; cargo tree lists what is built.
    tree = ["cargo", "tree", "--locked", "-e", "normal,build", "--prefix", "none",
            "--format", "{p}", "--no-default-features"] + (["--features", feature] if feature else [])
    built = {tuple(line.split()[:2])
             for line in subprocess.run(tree, check=True, capture_output=True, text=True).stdout.splitlines()
             if line.strip()}
    seen = {p for p in seen if (packages[p]["name"], "v" + packages[p]["version"]) in built}
    newest = max((version(packages[p]["rust_version"]), packages[p]["name"])
                 for p in seen if packages[p].get("rust_version"))
    return newest, packages[meta["resolve"]["root"]]["rust_version"]


failed = False
for feature, stated in STATED.items():
    (newest, crate), own = needed(feature)
    label = feature or "no feature"
    if newest > version(stated):
        print(f"{label}: {crate} needs Rust {'.'.join(map(str, newest))}, "
              f"newer than the stated {stated}")
        failed = True
    else:
        print(f"{label}: Rust {stated} (the newest need: {crate}, "
              f"{'.'.join(map(str, newest))})")
if version(own) != version(STATED[""]):
    print(f"Cargo.toml says rust-version {own}; the library needs {STATED['']}")
    failed = True
sys.exit(1 if failed else 0)
