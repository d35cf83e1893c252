//! Schema 3 -> 4: the lineage graph, the model registry, promotions and the MLflow tables
//! (`lineage`).

use redb::WriteTransaction;

use crate::store::StoreError;
use crate::store::tables::{
    LINEAGE_EDGES_IN, LINEAGE_EDGES_OUT, LINEAGE_INDEX, LINEAGE_NODES, MLFLOW_EXPERIMENTS,
    MLFLOW_METRICS, MLFLOW_RUNS, MODEL_ALIASES, MODEL_VERSIONS, MODELS, PROMOTIONS,
};

/// Creates the lineage, registry and MLflow tables; nothing existing is touched.
pub(super) fn apply(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(LINEAGE_NODES)?;
    txn.open_table(LINEAGE_EDGES_OUT)?;
    txn.open_table(LINEAGE_EDGES_IN)?;
    txn.open_table(LINEAGE_INDEX)?;
    txn.open_table(MODELS)?;
    txn.open_table(MODEL_VERSIONS)?;
    txn.open_table(MODEL_ALIASES)?;
    txn.open_table(PROMOTIONS)?;
    txn.open_table(MLFLOW_EXPERIMENTS)?;
    txn.open_table(MLFLOW_RUNS)?;
    txn.open_table(MLFLOW_METRICS)?;
    Ok(())
}
