//! `kiln reindex`: recomputes the search-index rows of every current resource from the search
//! parameters in force (FHIR R4 search.html: the index must follow the definitions), after a
//! definition changes or an upgrade that indexes more (UCUM canonical quantities, say). Each
//! batch of resources is replaced in one transaction; the resources and their versions are
//! not touched.

use crate::access::TenantId;
use crate::app::AppState;
use crate::rest::QueryParams;
use crate::search::query;
use crate::store::Pages;

/// Resources reindexed per transaction.
const BATCH: u32 = 500;

/// How many resources of each type were reindexed.
#[derive(Debug, Default)]
pub struct Reindexed {
    pub by_type: Vec<(String, u64)>,
}

impl Reindexed {
    pub fn total(&self) -> u64 {
        self.by_type.iter().map(|(_, n)| n).sum()
    }
}

/// Reindexes the current resources of `tenant` (of `only` that type, if given).
pub async fn reindex(state: &AppState, tenant: &TenantId, only: Option<&str>) -> Result<Reindexed, String> {
    let registry = state.registry;
    let types: Vec<&str> = match only {
        Some(name) => {
            let definition =
                registry.resource(name).ok_or_else(|| format!("{name} is not a type this server serves"))?;
            vec![definition.name.as_str()]
        }
        None => registry.resources().map(|definition| definition.name.as_str()).collect(),
    };
    let mut done = Reindexed::default();
    for type_name in types {
        let definition = registry.resource(type_name).expect("listed from the registry");
        let params = QueryParams(vec![("_count".into(), BATCH.to_string())]);
        let query =
            query::compile(definition, &params, &state.base_url, false, BATCH, BATCH).map_err(|e| format!("{e:?}"))?;
        let mut count = 0u64;
        let mut pages = Pages::new(state.store.as_ref(), tenant, type_name, query);
        while let Some(records) = pages.next().await.map_err(|e| e.to_string())? {
            let mut transaction = state.store.begin(tenant).await.map_err(|e| e.to_string())?;
            for record in &records {
                let value: serde_json::Value = serde_json::from_slice(record.json.as_deref().unwrap_or_default())
                    .map_err(|e| format!("{type_name}/{} is not readable JSON: {e}", record.id))?;
                let rows = state
                    .sensitive
                    .index_stored(registry, type_name, &value)
                    .map_err(|e| format!("{type_name}/{} cannot be indexed: {e:?}", record.id))?;
                transaction.replace_index_rows(type_name, &record.id, rows).await.map_err(|e| e.to_string())?;
            }
            transaction.commit().await.map_err(|e| e.to_string())?;
            count += records.len() as u64;
        }
        if count > 0 {
            done.by_type.push((type_name.to_string(), count));
        }
    }
    Ok(done)
}
