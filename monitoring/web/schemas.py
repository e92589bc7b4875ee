"""The JSON schemas of the API (``components/schemas`` of ``GET /openapi.json``) and the
pieces the route declarations share: query parameters, request bodies, error statuses.

Each schema is declared once here and referenced by name (``ok="Prediction"`` in a
route's :func:`monitoring.web.openapi.doc`, or :func:`ref` inside another schema).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    """A reference to ``components/schemas/<name>``."""
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: Iterable[str] = (), **properties: Schema) -> Schema:
    """An object schema; extra properties are allowed (responses may grow)."""
    return {"type": "object", "properties": properties, "required": list(required)}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def text(media_type: str) -> Schema:
    """A non-JSON 200 response of type ``media_type`` (HTML, plain text, CSV)."""
    return {"x-media-type": media_type, "type": "string"}


def query(name: str, schema: Schema, about: str) -> dict[str, Any]:
    """An optional query parameter (OpenAPI parameter object)."""
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": about}


def json_body(schema: Schema, description: str = "Optional JSON object.") -> dict[str, Any]:
    """An optional JSON request body."""
    content = {"application/json": {"schema": schema}}
    return {"required": False, "description": description, "content": content}


STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
ANY_OBJ: Schema = {"type": "object"}
NULL_NUM, NULL_STR = nullable(NUM), nullable(STR)
ROWS = array(ref("Row"))
COLUMNS: Schema = {"type": "object", "additionalProperties": array({})}  # {column: [values]}

SCHEMAS: dict[str, Schema] = {
    "Error": {
        **obj(("error", "message", "status"), error=STR, message=STR, status=INT),
        "additionalProperties": False,
        "description": "The one error shape of every endpoint.",
    },
    "Row": {
        "type": "object",
        "description": "One row: each feature column a finite number; other columns ignored.",
        "additionalProperties": True,
    },
    "PredictionRequest": {
        "oneOf": [
            obj(("data",), data={"anyOf": [ROWS, COLUMNS]}),
            obj(
                ("dataset_path",),
                dataset_path={
                    "type": "string",
                    "description": "A file in the input, ingested or test data folder.",
                },
            ),
            ROWS,
        ]
    },
    "Prediction": obj(
        ("model_version", "n_rows", "predictions", "probabilities"),
        model_version=STR,
        n_rows=INT,
        predictions=array(INT),
        probabilities=array(NUM),
    ),
    "Scoring": obj(
        ("model_version", "model_score", "metric", "dataset", "f1"),
        model_version=STR,
        model_score=NULL_NUM,
        metric=STR,
        dataset=STR,
        **dict.fromkeys(("f1", "precision", "recall", "accuracy", "roc_auc"), NULL_NUM),
        n_rows=nullable(INT),
        confusion_matrix=nullable(array(array(INT))),
        scored_at=NULL_STR,
        model_drift=ANY_OBJ,
        live_performance=ANY_OBJ,
        estimated_performance=ANY_OBJ,
    ),
    "SummaryStats": obj(
        ("rows", "computed_at", "summary"),
        rows=INT,
        computed_at=STR,
        summary=array(obj(("column",), column=STR)),
    ),
    "Diagnostics": obj(
        ("missing_data", "execution_time", "dependencies"),
        missing_data=array(ANY_OBJ),
        missing_data_unit=STR,
        execution_time=ANY_OBJ,
        execution_time_unit=STR,
        dependencies=ANY_OBJ,
    ),
    "DriftReport": obj(
        ("model_version", "source", "computed_at", "dataset_drift", "n_drifted", "n_columns"),
        id=INT,
        model_version=STR,
        source=STR,
        computed_at=STR,
        dataset_drift=BOOL,
        n_drifted=INT,
        n_columns=INT,
        drifted_columns=array(STR),
        columns={},
        adhoc=BOOL,
    ),
    "DriftHistory": obj(("reports",), reports=array(ANY_OBJ)),
    "FairnessGroup": obj(
        ("group", "size", "disparities"),
        group=STR,
        **dict.fromkeys(
            (
                "size",
                "label_positive",
                "label_negative",
                "predicted_positive",
                "predicted_negative",
                "tp",
                "fp",
                "tn",
                "fn",
            ),
            INT,
        ),
        **dict.fromkeys(
            ("prevalence", "pprev", "ppr", "precision", "fdr", "for", "fpr", "fnr", "tpr", "tnr"),
            NULL_NUM,
        ),
        disparities={
            "type": "object",
            "description": "Per metric: ratio to the reference group's value (null when "
            "undefined or infinite), verdict pass | fail | undefined | not_judged, and a note.",
            "additionalProperties": obj(
                ("ratio", "verdict"),
                ratio=NULL_NUM,
                verdict={"enum": ["pass", "fail", "undefined", "not_judged"]},
                infinite=BOOL,
                note=STR,
            ),
        },
    ),
    "FairnessAudit": obj(
        ("dataset", "verdict"),
        dataset=STR,
        n_rows=INT,
        verdict={"enum": ["pass", "fail", "undefined"]},
        error=STR,
        attributes={
            "type": "object",
            "additionalProperties": obj(
                ("verdict",),
                kind=STR,
                cuts=array(NUM),
                reference_group=NULL_STR,
                reference_rule=STR,
                groups=array(ref("FairnessGroup")),
                failing=array(ANY_OBJ),
                verdict=STR,
                error=STR,
            ),
        },
    ),
    "Fairness": obj(
        ("model_version", "tau", "metrics", "test", "traffic"),
        model_version=STR,
        tau=NUM,
        metrics=array(STR),
        test=ref("FairnessAudit"),
        traffic=ref("FairnessAudit"),
    ),
    "Runs": obj(("runs",), runs=array(ref("Run"))),
    "Run": obj(
        ("id", "status", "outcome"),
        id=INT,
        status=STR,
        outcome=NULL_STR,
        reason=NULL_STR,
        evidence=nullable(ANY_OBJ),
    ),
    "Versions": obj(
        ("versions", "deployments"),
        versions=array(
            obj(("version", "live"), version=STR, live=BOOL, f1=NULL_NUM, trained_at={})
        ),
        deployments=array(ANY_OBJ),
    ),
    "Health": obj(
        ("status", "model_version", "time"),
        status={"type": "string", "enum": ["ok", "no_model", "unavailable"]},
        model_version=NULL_STR,
        time=NUM,
    ),
    "Ready": obj(
        ("status", "checks"),
        status={"type": "string", "enum": ["ready", "not_ready"]},
        checks=obj(
            ("model", "store"),
            model=obj(("status",), status=STR, version=STR, reason=STR),
            store=obj(("status",), status=STR),
        ),
    ),
    "Ingestion": obj(
        ("batch_id", "rows_read", "rows_kept", "files"),
        batch_id=STR,
        rows_read=INT,
        rows_kept=INT,
        duplicates_removed=INT,
        rows_quarantined=INT,
        seconds=NUM,
        files=array(ANY_OBJ),
    ),
    "Retrain": obj(("model_version", "score"), model_version=STR, score=ANY_OBJ),
    "Deployment": obj(
        ("model_version", "previous_version"),
        model_version=STR,
        previous_version=NULL_STR,
        f1=NULL_NUM,
    ),
    "RollbackRequest": {**obj(version=NULL_STR), "additionalProperties": False},
    "RunRequest": {**obj(force=nullable(BOOL)), "additionalProperties": False},
    "OpenAPI": obj(("openapi", "paths"), openapi=STR, paths=ANY_OBJ),
}

DATA_BODY: dict[str, Any] = {
    "description": "The rows: JSON, a CSV body with a header row, or a multipart 'file' "
    "upload (.csv, .jsonl, .parquet). 'dataset_path' may also be a query parameter. At most "
    "api.max_rows rows and api.max_columns columns (413 beyond); values are flat: numbers, "
    "text or null.",
    "content": {
        # The example is what /docs' "Try it out" sends at first: the shipped test data.
        "application/json": {
            "schema": ref("PredictionRequest"),
            "example": {"dataset_path": "testdata.csv"},
        },
        "text/csv": {"schema": STR},
        "multipart/form-data": {
            "schema": obj(("file",), file={"type": "string", "format": "binary"})
        },
    },
}
LIMIT = query(
    "limit",
    {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
    "How many records, newest first.",
)
PATH_QUERY = query("dataset_path", STR, "A data file in the data folders (instead of a body).")

# Error statuses besides the common ones (401, 403, 405, 500: every operation).
DATA_ERRORS = (400, 403, 404, 413, 415, 422, 503)
ADMIN_ERRORS = (400, 404, 409, 413, 415, 422, 503)
