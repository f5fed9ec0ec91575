//! What the requester reads off a pod: its name and uid, the container that holds the
//! function, and whether that container has a log to read.

use k8s_openapi::api::core::v1::Pod;

use crate::Error;

/// A pod of a function, as the requester needs it.
#[derive(Debug, Clone)]
pub(super) struct FunctionPod {
    pub(super) name: String,
    pub(super) uid: String,
    /// The container whose log is the function's.
    pub(super) container: String,
    pub(super) state: PodState,
}

/// What a pod's log reader waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct PodState {
    /// How often the container was restarted: a new count is a new log.
    pub(super) restarts: i32,
    /// The container is running or has ended: it has a log.
    pub(super) started: bool,
    /// The pod is gone from the API.
    pub(super) gone: bool,
}

impl FunctionPod {
    /// The pod's facts; an error when no container can be told to be the function's.
    pub(super) fn of(pod: &Pod, function: &str) -> Result<Self, Error> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_else(|| name.clone());
        let containers: Vec<&str> = pod
            .spec
            .as_ref()
            .map(|spec| spec.containers.iter().map(|c| c.name.as_str()).collect())
            .unwrap_or_default();
        let container = match containers.as_slice() {
            _ if containers.contains(&function) => function.to_owned(),
            [only] => (*only).to_owned(),
            _ => {
                return Err(Error::other(format!(
                    "pod {name} of function {function} has the containers {}, and none is named {function}: \
                     the function's container must carry its name (as faas-netes names it), or be the pod's only one",
                    if containers.is_empty() { "(none)".to_owned() } else { containers.join(", ") }
                )))
            }
        };
        let state = state(pod, &container);
        Ok(FunctionPod {
            name,
            uid,
            container,
            state,
        })
    }
}

/// The state of `container` in `pod`.
fn state(pod: &Pod, container: &str) -> PodState {
    let status = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|all| all.iter().find(|c| c.name == container));
    let Some(status) = status else {
        return PodState::default();
    };
    let started = status
        .state
        .as_ref()
        .is_some_and(|s| s.running.is_some() || s.terminated.is_some());
    PodState {
        restarts: status.restart_count,
        started,
        gone: false,
    }
}
