//! [`Fixups`]: what [`super::gate`] does to a handler's answer after the
//! handler ran (the denied items put back with their error codes, the
//! authorized-operations fields filled in).

use kafka_protocol::messages::ResponseKind;

use crate::handlers::Response;

type Fixup = Box<dyn FnOnce(Response) -> Response + Send>;

/// Changes to a handler's answer; none for a request that passed whole.
pub struct Fixups(Option<Fixup>);

impl Fixups {
    pub fn none() -> Self {
        Fixups(None)
    }

    pub fn new(f: impl FnOnce(Response) -> Response + Send + 'static) -> Self {
        Fixups(Some(Box::new(f)))
    }

    pub fn apply(self, resp: Response) -> Response {
        match self.0 {
            Some(f) => f(resp),
            None => resp,
        }
    }
}

/// An ordinary response.
/// Passes a request on to its handler (`RequestKind::$kind`), then edits
/// the handler's `ResponseKind::$kind` answer in `$body`, where `$d` is the
/// response: the denied items go back into it, authorized operations are
/// filled in. Any other answer (an error of the whole request) passes
/// unchanged.
macro_rules! pass_and_edit {
    ($kind:ident, $req:expr, |$d:ident| $body:block) => {
        $crate::authz::Gate::Pass(
            kafka_protocol::messages::RequestKind::$kind($req),
            $crate::authz::ops::Fixups::new(move |resp| match resp {
                $crate::handlers::Response::Message(
                    kafka_protocol::messages::ResponseKind::$kind(mut $d),
                ) => {
                    $body
                    $crate::authz::ops::message(kafka_protocol::messages::ResponseKind::$kind($d))
                }
                other => other,
            }),
        )
    };
}
pub(super) use pass_and_edit;

pub(super) fn message(r: ResponseKind) -> Response {
    Response::Message(r)
}

/// Keeps in `items`, in order, those `allowed` accepts; returns the
/// answer entry `denied` makes for each one removed, for the fix-up to
/// put back into the handler's response.
pub(super) fn split_denied<T, D>(
    items: &mut Vec<T>,
    mut allowed: impl FnMut(&T) -> bool,
    mut denied: impl FnMut(&T) -> D,
) -> Vec<D> {
    let mut out = Vec::new();
    items.retain(|item| {
        let ok = allowed(item);
        if !ok {
            out.push(denied(item));
        }
        ok
    });
    out
}
