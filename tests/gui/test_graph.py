"""The layered layout of a DAG and the chart options built from it."""

from stardag_gui.graph import (
    LARGE_GRAPH,
    Node,
    chart_options,
    group_nodes,
    group_statuses,
    is_large,
    layers,
    layout,
)


def test_a_node_sits_one_layer_below_its_deepest_dependency() -> None:
    edges = [("a", "b"), ("b", "c"), ("a", "c"), ("c", "d")]

    assert layers(["a", "b", "c", "d"], edges) == {"a": 0, "b": 1, "c": 2, "d": 3}


def test_a_cycle_in_the_data_is_laid_out_below_the_rest() -> None:
    found = layers(["a", "b", "c"], [("a", "b"), ("b", "c"), ("c", "b")])

    assert found == {"a": 0, "b": 2, "c": 2}


def test_nodes_are_centred_in_their_layer_and_ordered_by_their_parents() -> None:
    edges = [("left", "under-left"), ("right", "under-right")]

    positions = layout(["right", "left", "under-left", "under-right"], edges)

    assert sorted(x for x, y in positions.values() if y == 0) == [-0.5, 0.5]
    assert positions["under-left"][0] == positions["left"][0]
    assert positions["under-right"][0] == positions["right"][0]


def test_names_become_plain_text_labels_and_statuses_categories() -> None:
    hostile = Node("id-1", "<img src=x onerror=alert(1)>", "FAILED")

    options = chart_options([hostile, Node("id-2", "fine", "COMPLETED")], [("id-1", "id-2")])

    assert options["tooltip"]["renderMode"] == "richText"
    (series,) = options["series"]
    first = series["data"][0]
    assert first["label"]["formatter"] == hostile.label
    assert series["categories"][first["category"]]["name"] == "FAILED"
    assert series["links"] == [{"source": "id-1", "target": "id-2"}]


def test_a_graph_is_large_above_the_threshold() -> None:
    assert not is_large(LARGE_GRAPH)
    assert is_large(LARGE_GRAPH + 1)


def test_grouped_nodes_count_their_members_and_show_the_most_urgent_status() -> None:
    nodes = [
        Node("a1", "a", "COMPLETED"),
        Node("a2", "a", "FAILED"),
        Node("b1", "b", "RUNNING"),
        Node("b2", "b", "COMPLETED"),
    ]
    group_of = {"a1": "ns.a", "a2": "ns.a", "b1": "ns.b", "b2": "ns.b"}

    grouped, edges = group_nodes(nodes, [("a1", "a2"), ("a1", "b1"), ("a2", "b2")], group_of)

    assert [(node.id, node.label, node.status) for node in grouped] == [
        ("ns.a", "ns.a (2)", "FAILED"),
        ("ns.b", "ns.b (2)", "RUNNING"),
    ]
    assert grouped[0].tooltip == "ns.a\n2 tasks: 1 completed, 1 failed"
    assert edges == [("ns.a", "ns.b")]
    assert group_statuses({"a1": "COMPLETED", "a2": "COMPLETED"}, group_of) == {"ns.a": "COMPLETED"}
