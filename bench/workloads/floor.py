"""The plain-Python floor: the same file reads and writes as the DAG workloads, no framework.

python floor.py w1 ROOT N [--durable]   cold build of the layered DAG
python floor.py w2 ROOT N               warm: every output exists; check the top layer
python floor.py w3 N                    ids: hash 10,000 parameter sets with a nested id
"""

import json
import os
import sys
import tempfile
import uuid

LAYERS = 20
NAMESPACE = uuid.UUID("9ca26b27-f7ee-4044-8b3c-e335dc5778dc")


def path(root: str, layer: int, index: int) -> str:
    return os.path.join(root, f"L{layer}", f"{index}.json")


def write(file: str, value: int, durable: bool) -> None:
    if not durable:
        with open(file, "w") as handle:
            json.dump(value, handle)
        return
    directory = os.path.dirname(file)
    fd, temporary = tempfile.mkstemp(dir=directory)
    with os.fdopen(fd, "w") as handle:
        json.dump(value, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.link(temporary, file)
    os.unlink(temporary)
    dir_fd = os.open(directory, os.O_RDONLY)
    os.fsync(dir_fd)
    os.close(dir_fd)


def w1(root: str, n: int, durable: bool) -> None:
    width = n // LAYERS
    for layer in range(LAYERS):
        os.makedirs(os.path.join(root, f"L{layer}"), exist_ok=True)
        for index in range(width):
            if layer == 0:
                value = index
            else:
                with open(path(root, layer - 1, index)) as a:
                    left = json.load(a)
                with open(path(root, layer - 1, (index + 1) % width)) as b:
                    right = json.load(b)
                value = (left + right) % 1000
            write(path(root, layer, index), value, durable)


def w2(root: str, n: int) -> None:
    width = n // LAYERS
    missing = [i for i in range(width) if not os.path.exists(path(root, LAYERS - 1, i))]
    assert not missing


def w3(n: int) -> None:
    ids = []
    for i in range(n):
        leaf = {"__namespace": "", "__name": "Leaf", "version": "", "index": i}
        leaf_id = uuid.uuid5(NAMESPACE, json.dumps(leaf, sort_keys=True, separators=(",", ":")))
        node = {
            "__namespace": "",
            "__name": "Node",
            "version": "",
            "index": i,
            "label": f"node-{i}",
            "scale": 0.5,
            "dep": {"id": str(leaf_id)},
        }
        ids.append(uuid.uuid5(NAMESPACE, json.dumps(node, sort_keys=True, separators=(",", ":"))))
    assert len(set(ids)) == n


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "w1":
        w1(sys.argv[2], int(sys.argv[3]), "--durable" in sys.argv)
    elif command == "w2":
        w2(sys.argv[2], int(sys.argv[3]))
    else:
        w3(int(sys.argv[2]))
