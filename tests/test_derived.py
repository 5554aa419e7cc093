"""Derived jobs end to end (SPEC section 6): a job's images become the next job's
inputs. The real CLI, the simulated API on loopback (which checks, server side,
what each request carried) and a real SQLite file."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import sqlite3
import textwrap
from collections import Counter
from contextlib import closing
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner
from google import genai
from google.genai import errors, types
from PIL import Image

from runner import runs
from runner.cli import cli
from runner.client import build_body
from runner.plan import build_plan
from runner.runs.parents import find_parents
from runner.spec import load_job
from tests.e2e import SECRET, invoke, manifest, write_job

if TYPE_CHECKING:
    from pathlib import Path

    from runner.simulate import SimServer
    from runner.simulate.stats import BodyStats, TurnShape

# Three parent images, signed: a Gemini 3 model signs its final parts when asked
# for its thoughts.
PARENT = """
    name: banners
    aspect_ratios: ["16:9"]
    generation: {thinkingConfig: {includeThoughts: true}}
    prompts:
      - {id: harbour, text: "a harbour at dusk"}
      - {id: forest, text: "a forest path"}
      - {id: city, text: "a city street"}
"""
TWO_MORE = """\
  - {id: desert, text: "a desert road"}
  - {id: island, text: "an island beach"}
"""


NIGHT = """\
prompts: ["Same scene at night, {change}"]
vars: {change: [neon signs, light rain]}
"""
CLOSER = """\
mode: continue
prompts: ["Now move the camera closer"]
"""
THINKING = "generation: {thinkingConfig: {includeThoughts: true}}\n"


def derived_job(
    tmp_path: Path,
    name: str,
    settings: str,
    marked: str = "succeeded",
    of: str = "banners",
) -> Path:
    """Job file <name>.yaml deriving from job `of`'s `marked` images, then the
    lines of `settings`."""
    head = f"name: {name}\nfrom: {{job: {of}, marked: {marked}}}\n"
    return write_job(tmp_path, head + settings, f"{name}.yaml")


def submit(job: Path, sim: SimServer, out: Path, *extra: str) -> tuple[int, str]:
    result = invoke(
        "submit", job, "--base-url", sim.url, "--output", out, "--no-review",
        *extra, env={"TOKAIFY_API_KEY": SECRET},
    )  # fmt: skip
    return result.exit_code, result.output


def plan_json(job: Path, out: Path) -> dict[str, Any]:
    result = invoke("plan", job, "--json", "--output", out)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def plan_error(job: Path, out: Path) -> str:
    result = invoke("plan", job, "--output", out)
    assert result.exit_code == 2, result.output
    return result.output


def parent_job(tmp_path: Path, sim: SimServer, body: str = PARENT) -> Path:
    job = write_job(tmp_path, body, "banners.yaml")
    assert submit(job, sim, tmp_path / "out")[0] == 0
    return job


def images_of(out: Path, job: str) -> dict[str, str]:
    """Image file name -> sha256 of its bytes, for a job's succeeded items."""
    found = {}
    for row in manifest(out, job):
        for output in row["outputs"]:
            data = (out / job / output).read_bytes()
            found[output.rpartition("/")[2]] = hashlib.sha256(data).hexdigest()
    return found


def bodies(sim: SimServer) -> list[BodyStats]:
    return list(sim.stats()["bodies"].values())


def images_in(turn: TurnShape) -> list[str]:
    return [p["sha256"] or "" for p in turn["parts"] if p["kind"] == "image"]


def store_file(out: Path) -> sqlite3.Connection:
    return sqlite3.connect(out / "runner.db")


# -- edit: each parent image sent with the new prompt -----------------------------


def test_an_edit_job_sends_each_parent_image_as_inline_data_with_each_prompt(
    sim: SimServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    parent_job(tmp_path, sim)
    parents = images_of(out, "banners")
    listed = f"[{', '.join(parents)}]"
    child = derived_job(
        tmp_path, "night", NIGHT + "mode: edit\naspect_ratios: [parent]\n", listed
    )

    planned = plan_json(child, out)
    assert planned["items"] == planned["to_send"] == 3 * 2
    assert planned["derived"] == {
        "from": "banners",
        "mode": "edit",
        "marked": list(parents),
        "parents": 3,
        "parents_to_send": 3,
    }
    assert planned["axes"]["parent"] == dict.fromkeys(parents, 2)
    sim.reset()
    assert submit(child, sim, out)[0] == 0

    sent = bodies(sim)
    assert len(sent) == 6 and {b["received"] for b in sent} == {1}
    # server side: each request is one user turn, the prompt then the parent
    # image as inline data, at the parent's own ratio
    assert {len(b["contents"]) for b in sent} == {1}
    arrived = Counter(image for b in sent for image in images_in(b["contents"][0]))
    assert arrived == dict.fromkeys(parents.values(), 2)
    assert {b["aspect_ratio"] for b in sent} == {"16:9"}
    assert {b["text"] for b in sent} == {
        "Same scene at night, neon signs",
        "Same scene at night, light rain",
    }
    rows = manifest(out, "night")
    assert {r["status"] for r in rows} == {"succeeded"}
    by_key = {r["key"]: r for r in manifest(out, "banners")}
    for row in rows:
        lineage = row["parent"]
        parent = by_key[lineage["key"]]
        assert lineage == {
            "job": "banners",
            "key": parent["key"],
            "image": parent["outputs"][0],
            "mode": "edit",
        }
        assert row["references"] == [f"banners/{parent['outputs'][0]}"]


def test_two_more_parents_send_only_their_cells(sim: SimServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    job = parent_job(tmp_path, sim)
    child = derived_job(tmp_path, "night", NIGHT)
    assert submit(child, sim, out)[0] == 0
    first = images_of(out, "banners")
    job.write_text(job.read_text() + TWO_MORE)
    assert submit(job, sim, out)[0] == 0
    added = {name: sha for name, sha in images_of(out, "banners").items()
             if name not in first}  # fmt: skip
    assert len(added) == 2

    planned = plan_json(child, out)
    assert (planned["items"], planned["new"], planned["to_send"]) == (10, 4, 4)
    assert planned["derived"]["parents_to_send"] == 2
    sim.reset()
    assert submit(child, sim, out)[0] == 0

    sent = bodies(sim)
    assert len(sent) == 4
    arrived = Counter(image for b in sent for image in images_in(b["contents"][0]))
    assert arrived == dict.fromkeys(added.values(), 2)
    assert len(manifest(out, "night")) == 10
    sim.reset()
    assert submit(child, sim, out)[0] == 0
    assert sim.stats()["requests"] == 0


def test_a_parent_image_that_changed_makes_new_cells_and_keys_of_others_stay(
    sim: SimServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    parent_job(tmp_path, sim)
    child = derived_job(tmp_path, "night", 'prompts: ["Same scene at night"]')
    assert submit(child, sim, out)[0] == 0
    keys = {r["key"] for r in manifest(out, "night")}
    first = manifest(out, "banners")[0]["outputs"][0]
    with Image.open(out / "banners" / first) as image:
        image.rotate(180).save(out / "banners" / first)

    sim.reset()
    assert submit(child, sim, out)[0] == 0

    assert sim.stats()["requests"] == 1
    assert len(keys - {r["key"] for r in manifest(out, "night")}) == 1


# -- continue: the parent's conversation sent back, signatures and all ------------


def test_continue_sends_the_parents_turns_with_their_signatures(
    sim: SimServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    parent_job(tmp_path, sim)
    parents = images_of(out, "banners")
    child = derived_job(tmp_path, "closer", CLOSER + THINKING)
    sim.reset()
    assert submit(child, sim, out)[0] == 0

    sent = bodies(sim)
    assert len(sent) == 3 and sim.stats()["by_status"] == {200: 3}
    texts = {"a harbour at dusk", "a forest path", "a city street"}
    answered = []
    for body in sent:
        user, model, turn = body["contents"]
        assert [user["role"], model["role"], turn["role"]] == ["user", "model", "user"]
        assert [p["kind"] for p in user["parts"]] == ["text"]
        assert [p["kind"] for p in turn["parts"]] == ["text"]
        # the model's turn as it answered: thought text, then the signed final
        # image whose bytes are the parent image's; the thought images, whose
        # bytes are not kept and which carry no signature, left out
        kinds = [(p["kind"], p["signed"], p["thought"]) for p in model["parts"]]
        assert kinds == [("text", False, True), ("image", True, False)]
        answered += images_in(model)
        assert body["text"] in {f"{t}\nNow move the camera closer" for t in texts}
    assert sorted(answered) == sorted(parents.values())
    rows = manifest(out, "closer")
    assert {r["status"] for r in rows} == {"succeeded"}
    assert {r["parent"]["mode"] for r in rows} == {"continue"}


def test_a_continue_of_a_continue_sends_the_whole_conversation(
    sim: SimServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    parent_job(tmp_path, sim)
    closer = derived_job(tmp_path, "closer", CLOSER + THINKING, f"[{harbour(out)}]")
    assert submit(closer, sim, out)[0] == 0
    closest = derived_job(
        tmp_path,
        "closest",
        'mode: continue\nprompts: ["Closer still"]\nmodel: gemini-3-pro-image-preview',
        of="closer",
    )

    planned = plan_json(closest, out)
    sim.reset()
    assert submit(closest, sim, out)[0] == 0

    (body,) = bodies(sim)
    roles = [turn["role"] for turn in body["contents"]]
    assert roles == ["user", "model", "user", "model", "user"]
    assert body["text"].splitlines() == [
        "a harbour at dusk",
        "Now move the camera closer",
        "Closer still",
    ]
    first, second = images_in(body["contents"][1]), images_in(body["contents"][3])
    assert first == [images_of(out, "banners")[harbour(out)]]
    assert second == list(images_of(out, "closer").values())
    # signatures are a model's own: another model continuing gets a warning
    assert any(
        "mode: continue sends gemini-3.1-flash-image-preview's answers" in w
        for w in planned["warnings"]
    )


def harbour(out: Path) -> str:
    """The file name of the harbour image of job banners."""
    (row,) = [r for r in manifest(out, "banners") if r["prompt_id"] == "harbour"]
    name: str = row["outputs"][0].rpartition("/")[2]
    return name


def test_a_tampered_signature_is_refused_by_the_api_with_a_400(
    sim: SimServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    parent_job(tmp_path, sim)
    forged = base64.b64encode(secrets.token_bytes(48)).decode()
    with closing(store_file(out)) as db, db:
        item_id, parts_json = db.execute(
            "SELECT a.item_id, a.parts_json FROM attempts a JOIN items i "
            "ON i.id = a.item_id WHERE i.prompt_id = 'harbour'"
        ).fetchone()
        parts = json.loads(parts_json)
        for part in parts:
            if "thoughtSignature" in part:
                part["thoughtSignature"] = forged
        db.execute(
            "UPDATE attempts SET parts_json = ? WHERE item_id = ?",
            (json.dumps(parts), item_id),
        )
    child = derived_job(tmp_path, "closer", CLOSER)
    sim.reset()
    code, output = submit(child, sim, out)

    assert code == 1, output
    assert sim.stats()["by_status"] == {200: 2, 400: 1}
    (failed,) = [r for r in manifest(out, "closer") if r["status"] == "failed"]
    assert failed["parent"]["key"] == manifest(out, "banners")[0]["key"]
    assert "invalid thought signature for content at index 1" in failed["error"]


# -- rerender: the parent's own request again, bigger ---------------------------------


def test_rerender_sends_the_parents_prompt_and_references_at_the_new_size(
    sim: SimServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    refs = tmp_path / "refs"
    refs.mkdir()
    Image.new("RGB", (40, 30), "orange").save(refs / "logo.png")
    logo = hashlib.sha256((refs / "logo.png").read_bytes()).hexdigest()
    parent_job(
        tmp_path,
        sim,
        """
        name: banners
        prompts: ["a banner with this logo", "a poster with this logo"]
        aspect_ratios: ["16:9", "4:5"]
        image_sizes: ["1K"]
        references: [[refs/logo.png]]
        exclude: [{prompt: p2, aspect_ratio: "16:9"}]
        samples: 2
        """,
    )
    parents = manifest(out, "banners")
    child = derived_job(
        tmp_path, "big", 'mode: rerender\naspect_ratios: [parent]\nimage_sizes: ["2K"]'
    )

    planned = plan_json(child, out)
    # two samples of one cell are two parents, and two rerenders: each item's key
    # holds its parent image's hash, though their requests are alike
    assert planned["items"] == 6 and planned["axes"]["prompt"] == {"p1": 4, "p2": 2}
    sim.reset()
    assert submit(child, sim, out)[0] == 0

    assert sim.stats()["requests"] == 6
    shapes = Counter(
        (b["text"], b["aspect_ratio"], b["image_size"], *images_in(b["contents"][0]))
        for b in bodies(sim)
        for _ in range(b["received"])
    )
    # the parent's prompt, its ratio, the new size, and its references: only the
    # logo, no generated image attached
    assert shapes == Counter(
        (p["prompt"], p["aspect_ratio"], "2K", logo) for p in parents
    )
    assert all(len(b["contents"]) == 1 for b in bodies(sim))
    rows = manifest(out, "big")
    cells = Counter((r["prompt_id"], r["aspect_ratio"], r["image_size"]) for r in rows)
    assert cells == {("p1", "16:9", "2K"): 2, ("p1", "4:5", "2K"): 2,
                     ("p2", "4:5", "2K"): 2}  # fmt: skip
    assert {r["parent"]["mode"] for r in rows} == {"rerender"}
    assert {r["parent"]["key"] for r in rows} == {p["key"] for p in parents}


# -- what is refused before anything is sent ----------------------------------------


def test_a_parent_job_that_is_not_in_the_store_is_a_plan_time_error(
    sim: SimServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    parent_job(tmp_path, sim)
    child = write_job(
        tmp_path,
        'from: {job: baners, marked: succeeded}\nprompts: ["at night"]\n',
        "night.yaml",
    )

    output = plan_error(child, out)

    assert "night.yaml line 1: from: job 'baners' is not in the store" in output
    assert "did you mean 'banners'?" in output
    assert "Traceback" not in output


def test_a_parent_image_that_is_gone_is_a_plan_time_error_naming_it(
    sim: SimServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    parent_job(tmp_path, sim)
    gone = manifest(out, "banners")[1]["outputs"][0]
    (out / "banners" / gone).unlink()
    child = derived_job(tmp_path, "night", 'prompts: ["at night"]')

    output = plan_error(child, out)
    sim.reset()
    code, _ = submit(child, sim, out)

    assert f"parent image banners/{gone} is gone" in output
    assert code == 2 and sim.stats()["requests"] == 0


def test_continue_from_a_parent_recorded_without_its_answer_is_refused(
    sim: SimServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    parent_job(tmp_path, sim)
    with closing(store_file(out)) as db, db:
        db.execute(
            "UPDATE attempts SET parts_json = NULL WHERE item_id = "
            "(SELECT id FROM items WHERE prompt_id = 'forest')"
        )
    forest = next(r for r in manifest(out, "banners") if r["prompt_id"] == "forest")
    child = derived_job(tmp_path, "closer", CLOSER)

    output = plan_error(child, out)

    assert (
        f"parent image banners/{forest['outputs'][0]} was recorded without its "
        "answer's parts"
    ) in output
    assert "use 'mode: edit'" in output
    # the same parent is fine for an edit
    child.write_text(child.read_text().replace("continue", "edit"))
    assert invoke("plan", child, "--output", out).exit_code == 0


def test_rerender_refuses_prompts_and_vars(tmp_path: Path) -> None:
    child = write_job(
        tmp_path,
        """
        from: banners
        mode: rerender
        prompts: ["a {thing}"]
        vars: {thing: [cat]}
        """,
    )

    output = plan_error(child, tmp_path / "out")

    assert "job.yaml line 3: prompts: is not used with 'mode: rerender'" in output
    assert "job.yaml line 4: vars: is not used with 'mode: rerender'" in output


def test_starring_two_more_parents_sends_only_their_cells(
    sim: SimServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    parent_job(tmp_path, sim, textwrap.dedent(PARENT) + TWO_MORE)
    images = list(images_of(out, "banners").items())
    child = derived_job(tmp_path, "night", NIGHT, marked="star")
    assert "has no starred images" in plan_error(child, out)
    star(out, "banners", [name for name, _ in images[:3]])
    assert submit(child, sim, out)[0] == 0
    star(out, "banners", [name for name, _ in images[3:]])

    planned = plan_json(child, out)
    sim.reset()
    assert submit(child, sim, out)[0] == 0

    assert (planned["items"], planned["to_send"]) == (10, 4)
    arrived = Counter(i for b in bodies(sim) for i in images_in(b["contents"][0]))
    assert arrived == {sha: 2 for _, sha in images[3:]}


def star(out: Path, job: str, names: list[str]) -> None:
    """Star these images of `job` with `runner mark --star`."""
    result = CliRunner().invoke(
        cli, ["mark", job, *names, "--star", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output


def test_marked_star_without_starred_images_is_a_plan_time_error(
    sim: SimServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    parent_job(tmp_path, sim)
    child = write_job(tmp_path, 'from: banners\nprompts: ["at night"]\n')

    output = plan_error(child, out)

    assert "from: job 'banners' has no starred images to derive from" in output
    assert "runner mark banners IMAGE... --star" in output
    assert "marked: succeeded" in output


def test_an_explicit_list_names_images_or_item_key_prefixes(
    sim: SimServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    parent_job(tmp_path, sim)
    rows = manifest(out, "banners")
    name = rows[0]["outputs"][0].rpartition("/")[2]
    child = write_job(
        tmp_path,
        f"""
        from: {{job: banners, marked: [{name}, {rows[1]["key"][:10]}, 0badc0ffee]}}
        prompts: ["at night"]
        """,
    )

    output = plan_error(child, out)

    assert "from: marked: '0badc0ffee' is neither an image of job 'banners'" in output
    child.write_text(child.read_text().replace(", 0badc0ffee", ""))
    planned = plan_json(child, out)
    assert planned["derived"]["parents"] == 2


def test_job_file_mistakes_in_from_and_mode(tmp_path: Path) -> None:
    child = write_job(
        tmp_path,
        """
        from: {job: banners, markd: star}
        mode: edt
        prompts: ["at night"]
        aspect_ratios: [parent]
        """,
    )
    plain = write_job(
        tmp_path,
        'mode: edit\nprompts: ["x"]\naspect_ratios: [parent]\n',
        "plain.yaml",
    )

    output = plan_error(child, tmp_path / "out")
    other = plan_error(plain, tmp_path / "out")

    assert "unknown from: key 'markd'; did you mean 'marked'?" in output
    assert "mode 'edt' is not a mode; did you mean 'edit'?" in output
    assert "plain.yaml line 1: mode: needs 'from:'" in other
    assert "plain.yaml line 3: aspect ratio 'parent' keeps each parent" in other


# -- Google's own SDK sends the conversation a continue makes ---------------------


def test_googles_sdk_sends_a_continue_conversation_and_a_forged_one_is_a_400(
    sim: SimServer, tmp_path: Path
) -> None:
    """The turns the runner sends back for a `continue`, handed to google-genai
    as its own Content objects: the simulator answers them, and refuses the same
    turns with a signature it never issued, through the SDK's ClientError."""
    out = tmp_path / "out"
    parent_job(tmp_path, sim)
    child = derived_job(tmp_path, "closer", CLOSER)
    contents = continue_contents(child, out)
    forged = json.loads(json.dumps(contents))
    for part in forged[1]["parts"]:
        if "thoughtSignature" in part:
            part["thoughtSignature"] = base64.b64encode(b"forged" * 8).decode()
    options = types.HttpOptions(base_url=sim.url, timeout=10_000)
    client = genai.Client(api_key="sdk-key", http_options=options)
    config = types.GenerateContentConfig(response_modalities=["IMAGE"])
    try:
        answer = client.models.generate_content(
            model="gemini-3.1-flash-image-preview",
            contents=sdk_contents(contents),
            config=config,
        )
        with pytest.raises(errors.ClientError) as refused:
            client.models.generate_content(
                model="gemini-3.1-flash-image-preview",
                contents=sdk_contents(forged),
                config=config,
            )
    finally:
        client.close()

    assert [p.inline_data is not None for p in answer.parts or []][-1]
    assert (refused.value.code, refused.value.status) == (400, "INVALID_ARGUMENT")
    assert "invalid thought signature" in (refused.value.message or "")


def continue_contents(job: Path, out: Path) -> list[dict[str, Any]]:
    """The `contents` the runner sends for the first item of a continue job."""
    workspace = runs.Workspace(out)
    store = workspace.open_store()
    try:
        spec = load_job(job)
        found = find_parents(spec, store, workspace)
    finally:
        store.close()
    item = build_plan(spec, found.parents).items[0]
    data = [f.abs_path.read_bytes() for f in item.request.inline_files]
    contents: list[dict[str, Any]] = build_body(item.request, data)["contents"]
    return contents


def sdk_contents(contents: list[dict[str, Any]]) -> list[types.Content]:
    """`contents` as google-genai's own objects (its pydantic types read base64
    text into bytes when validating JSON)."""
    return [types.Content.model_validate_json(json.dumps(c)) for c in contents]
