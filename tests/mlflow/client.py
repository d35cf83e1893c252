"""Drives cairn's MLflow REST subset with the real mlflow client (tests/mlflow_client.rs).

Environment: MLFLOW_TRACKING_URI (cairn), MLFLOW_TRACKING_TOKEN (a cairn API token),
WORK (a scratch directory). Asserts what the client sees, then prints one JSON line with the
ids and values for the Rust side to check against cairn's store.
"""

import json
import os
import sys

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag
from mlflow.exceptions import MlflowException

work = os.environ["WORK"]
client = MlflowClient()

# Experiments: create, get-by-name (set_experiment), get, search; duplicate refused.
exp_id = client.create_experiment("bookstore-knn", tags={"team": "recs"})
assert mlflow.set_experiment("bookstore-knn").experiment_id == exp_id
assert client.get_experiment(exp_id).name == "bookstore-knn"
assert client.get_experiment(exp_id).tags["team"] == "recs"
found = client.search_experiments(filter_string="name LIKE 'bookstore%'")
assert [e.experiment_id for e in found] == [exp_id], found
try:
    client.create_experiment("bookstore-knn")
    raise AssertionError("a duplicate experiment was accepted")
except MlflowException as e:
    assert e.error_code == "RESOURCE_ALREADY_EXISTS", e.error_code
default = client.get_experiment_by_name("Default")
assert default is not None and default.experiment_id == "0"

# A run: params (single and batch), metrics with history, tags, dataset input, artifact.
model_file = os.path.join(work, "model.txt")
with open(model_file, "w") as f:
    f.write("item-knn co-occurrence model\n")
with mlflow.start_run(run_name="train") as run:
    run_id = run.info.run_id
    mlflow.log_param("k", 5)
    mlflow.log_params({"seed": 7, "top_k": 10})
    mlflow.log_metric("score", 0.30, step=0)
    mlflow.log_metric("score", 0.41, step=1)
    mlflow.log_metrics({"precision": 0.2, "recall": 0.5}, step=1)
    mlflow.set_tag("stage", "train")
    mlflow.set_tags({"dataset": "co-reading", "owner": "ds"})
    client.log_inputs(
        run_id,
        [
            DatasetInput(
                Dataset(
                    name="co-reading",
                    digest="abc123",
                    source_type="http",
                    source=json.dumps({"uri": "http://data.local/co-reading.csv"}),
                ),
                [InputTag("mlflow.data.context", "training")],
            )
        ],
    )
    mlflow.log_artifact(model_file, artifact_path="model")
    assert run.info.artifact_uri == f"mlflow-artifacts:/{exp_id}/{run_id}/artifacts"

try:
    client.log_param(run_id, "k", 6)
    raise AssertionError("a changed param was accepted")
except MlflowException as e:
    assert e.error_code == "INVALID_PARAMETER_VALUE", e.error_code

got = client.get_run(run_id)
assert got.info.status == "FINISHED", got.info.status
assert got.info.run_name == "train"
assert got.data.params == {"k": "5", "seed": "7", "top_k": "10"}, got.data.params
assert got.data.metrics["score"] == 0.41, got.data.metrics
assert got.data.tags["stage"] == "train" and got.data.tags["owner"] == "ds"
assert got.inputs.dataset_inputs[0].dataset.name == "co-reading"
history = client.get_metric_history(run_id, "score")
assert [(m.step, m.value) for m in history] == [(0, 0.30), (1, 0.41)], history

# Artifacts back through the proxy: list and download.
listed = client.list_artifacts(run_id)
assert [(a.path, a.is_dir) for a in listed] == [("model", True)], listed
listed = client.list_artifacts(run_id, "model")
assert [(a.path, a.file_size) for a in listed] == [("model/model.txt", 29)], listed
dst = os.path.join(work, "download")
os.makedirs(dst)
local = client.download_artifacts(run_id, "model/model.txt", dst)
with open(local) as f:
    assert f.read() == "item-knn co-occurrence model\n"

# A second run that the filter must leave out.
with mlflow.start_run(run_name="baseline"):
    mlflow.log_param("k", 1)
    mlflow.log_metric("score", 0.12)
runs = client.search_runs(
    [exp_id], filter_string="metrics.score > 0.4 AND params.k = '5' AND attributes.status = 'FINISHED'"
)
assert [r.info.run_id for r in runs] == [run_id], runs
ordered = client.search_runs([exp_id], order_by=["metrics.score ASC"])
assert [r.info.run_name for r in ordered] == ["baseline", "train"], ordered
page = client.search_runs([exp_id], max_results=1)
assert len(page) == 1 and page.token, page.token
rest = client.search_runs([exp_id], max_results=1, page_token=page.token)
assert len(rest) == 1 and rest[0].info.run_id != page[0].info.run_id

# Registry: a registered model is a cairn model, a version a cairn version.
client.create_registered_model("recommender", description="item-kNN")
mv = client.create_model_version(
    "recommender", source=f"{got.info.artifact_uri}/model/model.txt", run_id=run_id
)
assert mv.version == "1" and mv.run_id == run_id, mv
client.update_model_version("recommender", "1", description="first")
client.set_registered_model_alias("recommender", "champion", "1")
by_alias = client.get_model_version_by_alias("recommender", "champion")
assert by_alias.version == "1" and by_alias.aliases == ["champion"], by_alias
assert by_alias.description == "first"
model = client.get_registered_model("recommender")
assert model.aliases == {"champion": "1"}, model.aliases
versions = client.search_model_versions("name = 'recommender'")
assert [v.version for v in versions] == ["1"], versions
searched = client.search_registered_models("name LIKE 'rec%'")
assert [m.name for m in searched] == ["recommender"], searched
client.set_registered_model_alias("recommender", "scratch", "1")
client.delete_registered_model_alias("recommender", "scratch")
assert client.get_registered_model("recommender").aliases == {"champion": "1"}

print(json.dumps({"experiment_id": exp_id, "run_id": run_id, "version": mv.version}))
sys.stdout.flush()
