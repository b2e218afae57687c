"""Addresses a peer announces in its Hello are checked before anything connects to them."""

from zray._private.wire.transport import choose_address, valid_address


def test_valid_addresses():
    assert valid_address("tcp://127.0.0.1:5555")
    assert valid_address("ipc:///tmp/zray/s/node-1|tcp://127.0.0.1:5555")


def test_invalid_addresses():
    for bad in (
        "",
        "x" * 100,
        "tcp://",
        "tcp://a|",
        "udp://1.2.3.4:5",
        None,
        7,
        "tcp://" + "a" * 2000,
        "ipc:///x|http://y",
    ):
        assert not valid_address(bad), bad


def test_choose_address_prefers_an_existing_ipc_socket(tmp_path):
    path = tmp_path / "sock"
    path.write_text("")
    assert choose_address(f"ipc://{path}|tcp://127.0.0.1:1") == f"ipc://{path}"
    assert choose_address("ipc:///nonexistent/zz|tcp://127.0.0.1:1") == "tcp://127.0.0.1:1"
