//! [`Table`]: the functions a store holds, by namespace and name, shared by the in-memory
//! store (its rings) and the store on disk (its segment lists).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::{read, write};
use crate::{Error, FunctionName};

/// namespace -> name -> entry, nested so that lookups do not allocate; with the
/// namespace of requests that name none, and a bound on how many functions it holds.
pub(crate) struct Table<T> {
    functions: RwLock<HashMap<String, HashMap<String, Arc<T>>>>,
    default_namespace: String,
    max_functions: usize,
}

impl<T> Table<T> {
    /// A table holding `functions` already (a store read back from disk).
    pub(crate) fn new(
        default_namespace: String,
        max_functions: usize,
        functions: HashMap<String, HashMap<String, Arc<T>>>,
    ) -> Self {
        Table {
            functions: RwLock::new(functions),
            default_namespace,
            max_functions,
        }
    }

    /// The namespace of messages and requests that name none.
    pub(crate) fn default_namespace(&self) -> &str {
        &self.default_namespace
    }

    /// `namespace`, or the default one for an empty one.
    pub(crate) fn namespace<'a>(&'a self, namespace: &'a str) -> &'a str {
        if namespace.is_empty() {
            &self.default_namespace
        } else {
            namespace
        }
    }

    /// The entry of a function, if the table holds it.
    pub(crate) fn get(&self, namespace: &str, name: &str) -> Option<Arc<T>> {
        let functions = read(&self.functions);
        functions.get(self.namespace(namespace))?.get(name).cloned()
    }

    /// The entry of a function, made by `make` (given the namespace, never empty, and
    /// the name) if the table does not hold it yet. A function beyond the table's bound
    /// is refused, and nothing is made.
    pub(crate) fn get_or_make(
        &self,
        namespace: &str,
        name: &str,
        make: impl FnOnce(&str, &str) -> Result<T, Error>,
    ) -> Result<Arc<T>, Error> {
        if let Some(entry) = self.get(namespace, name) {
            return Ok(entry);
        }
        let namespace = self.namespace(namespace);
        let mut functions = write(&self.functions);
        if let Some(entry) = functions.get(namespace).and_then(|n| n.get(name)) {
            return Ok(Arc::clone(entry));
        }
        let count: usize = functions.values().map(HashMap::len).sum();
        if count >= self.max_functions {
            return Err(Error::other(format!(
                "the log store already holds its limit of {} functions; {namespace}/{name} was refused",
                self.max_functions
            )));
        }
        let entry = Arc::new(make(namespace, name)?);
        functions
            .entry(namespace.to_owned())
            .or_default()
            .insert(name.to_owned(), Arc::clone(&entry));
        Ok(entry)
    }

    /// Every entry, in no particular order.
    pub(crate) fn all(&self) -> Vec<Arc<T>> {
        read(&self.functions)
            .values()
            .flat_map(|names| names.values().cloned())
            .collect()
    }

    /// Every function's name, sorted by namespace and name.
    pub(crate) fn names(&self) -> Vec<FunctionName> {
        let functions = read(&self.functions);
        let mut names: Vec<FunctionName> = functions
            .iter()
            .flat_map(|(namespace, entries)| {
                entries
                    .keys()
                    .map(move |name| FunctionName::new(namespace.as_str(), name.as_str()))
            })
            .collect();
        names.sort();
        names
    }
}
