"""The committed Pub/Sub API stubs are exactly what grpc_tools generates from the committed .proto."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
PACKAGE = ROOT / "connector" / "adapters" / "salesforce" / "cdc"
STUBS = ("pubsub_api_pb2.py", "pubsub_api_pb2.pyi", "pubsub_api_pb2_grpc.py")


def test_regenerating_the_stubs_gives_the_committed_files(tmp_path: Path) -> None:
    protoc = pytest.importorskip("grpc_tools.protoc", reason="grpcio-tools is a development dependency")
    import grpc_tools

    committed = {name: (PACKAGE / name).read_text(encoding="utf-8") for name in STUBS}
    made_with = re.search(r"GRPC_GENERATED_VERSION = '([^']+)'", committed["pubsub_api_pb2_grpc.py"])
    installed = getattr(grpc_tools, "__version__", None)
    if installed is None:
        from importlib.metadata import version

        installed = version("grpcio-tools")
    if made_with is None or made_with.group(1) != installed:
        pytest.skip(f"stubs were generated with grpcio-tools {made_with.group(1) if made_with else '?'}, {installed} is installed")
    rc = protoc.main(["protoc", f"-I{ROOT}", f"--python_out={tmp_path}", f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}",
                      str(PACKAGE / "pubsub_api.proto")])
    assert rc == 0
    for name in STUBS:
        generated = (tmp_path / "connector" / "adapters" / "salesforce" / "cdc" / name).read_text(encoding="utf-8")
        assert generated == committed[name], f"{name} is stale: regenerate it (see the header of pubsub_api.proto)"


def test_stubs_carry_the_salesforce_service_and_messages() -> None:
    from connector.adapters.salesforce.cdc import pubsub_api_pb2 as pb

    service = pb.DESCRIPTOR.services_by_name["PubSub"]
    assert pb.DESCRIPTOR.package == "eventbus.v1"
    assert {m.name for m in service.methods} == {"Subscribe", "GetSchema", "GetTopic", "Publish", "PublishStream"}
    fetch = pb.FetchRequest.DESCRIPTOR.fields_by_name
    assert [(f, fetch[f].number) for f in ("topic_name", "replay_preset", "replay_id", "num_requested", "auth_refresh")] == [
        ("topic_name", 1), ("replay_preset", 2), ("replay_id", 3), ("num_requested", 4), ("auth_refresh", 5)]
    assert pb.ReplayPreset.Name(2) == "CUSTOM" and pb.ReplayPreset.Name(0) == "LATEST"
