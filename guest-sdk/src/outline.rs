//! Outline building blocks, named after plumpy's: [`step`], [`if_`], [`while_`], [`return_`].
//!
//! ```no_run
//! # use damson_guest::prelude::*;
//! # #[derive(Default)] struct Collatz;
//! # impl Collatz {
//! #     fn not_one(&self, _: &Ctx) -> Result<bool> { Ok(false) }
//! #     fn is_even(&self, _: &Ctx) -> Result<bool> { Ok(false) }
//! #     fn halve(&mut self, _: &mut Ctx) -> Step { Ok(Next::Continue) }
//! #     fn triple(&mut self, _: &mut Ctx) -> Step { Ok(Next::Continue) }
//! # }
//! # fn define(spec: &mut Spec<Collatz>) {
//! spec.outline([while_("not_one", Collatz::not_one, [
//!     if_("is_even", Collatz::is_even, [step("halve", Collatz::halve)])
//!         .else_([step("triple", Collatz::triple)]),
//! ])]);
//! # }
//! ```

use std::collections::HashMap;

use crate::__private::bindings::damson::workflow::types as wit;
use crate::{Ctx, Result, Step};

/// A step: a method of the plugin that may read inputs and context, emit outputs and say what
/// comes next.
pub type StepFn<P> = fn(&mut P, &mut Ctx) -> Step;
/// A condition: a method of the plugin that reads state and answers yes or no.
pub type Condition<P> = fn(&P, &Ctx) -> Result<bool>;

/// A branch of an `if_`: its condition (none for `else_`) and body.
type Branch<P> = (Option<(&'static str, Condition<P>)>, Vec<Outline<P>>);

/// One element of an outline.
pub enum Outline<P> {
    #[doc(hidden)]
    Step(&'static str, StepFn<P>),
    #[doc(hidden)]
    If(Vec<Branch<P>>),
    #[doc(hidden)]
    While(&'static str, Condition<P>, Vec<Outline<P>>),
    #[doc(hidden)]
    Return(Option<u32>),
}

/// Call `f`, known to the host as `name`.
pub fn step<P>(name: &'static str, f: StepFn<P>) -> Outline<P> {
    Outline::Step(name, f)
}

/// Run `body` if `condition` holds; chain [`Outline::elif_`] and [`Outline::else_`].
pub fn if_<P>(
    name: &'static str,
    condition: Condition<P>,
    body: impl IntoIterator<Item = Outline<P>>,
) -> Outline<P> {
    Outline::If(vec![(Some((name, condition)), body.into_iter().collect())])
}

/// Run `body` again and again while `condition` holds.
pub fn while_<P>(
    name: &'static str,
    condition: Condition<P>,
    body: impl IntoIterator<Item = Outline<P>>,
) -> Outline<P> {
    Outline::While(name, condition, body.into_iter().collect())
}

/// End the process successfully here (exit status 0).
pub fn return_<P>() -> Outline<P> {
    Outline::Return(None)
}

/// End the process here with this exit status.
pub fn return_with<P>(status: u32) -> Outline<P> {
    Outline::Return(Some(status))
}

impl<P> Outline<P> {
    /// Add an `elif_` branch to an [`if_`].
    ///
    /// # Panics
    /// When `self` is not an `if_`, or already has an `else_`.
    #[track_caller]
    pub fn elif_(
        self,
        name: &'static str,
        condition: Condition<P>,
        body: impl IntoIterator<Item = Outline<P>>,
    ) -> Self {
        self.add_branch(Some((name, condition)), body.into_iter().collect(), "elif_")
    }

    /// Add the `else_` branch to an [`if_`].
    ///
    /// # Panics
    /// When `self` is not an `if_`, or already has an `else_`.
    #[track_caller]
    pub fn else_(self, body: impl IntoIterator<Item = Outline<P>>) -> Self {
        self.add_branch(None, body.into_iter().collect(), "else_")
    }

    #[track_caller]
    fn add_branch(
        self,
        condition: Option<(&'static str, Condition<P>)>,
        body: Vec<Outline<P>>,
        what: &str,
    ) -> Self {
        match self {
            Outline::If(mut branches) => {
                assert!(
                    branches.last().is_some_and(|(c, _)| c.is_some()),
                    "{what} after else_: else_ must be the last branch of an if_"
                );
                branches.push((condition, body));
                Outline::If(branches)
            }
            _ => panic!("{what} can only follow if_ or elif_"),
        }
    }
}

/// Flatten a sequence into `nodes`, registering steps and conditions by name; returns its index.
pub(crate) fn flatten_sequence<P>(
    seq: Vec<Outline<P>>,
    nodes: &mut Vec<wit::Instruction>,
    steps: &mut HashMap<String, (StepFn<P>, usize)>,
    conditions: &mut HashMap<String, (Condition<P>, usize)>,
) -> u32 {
    let children = seq
        .into_iter()
        .map(|o| flatten(o, nodes, steps, conditions))
        .collect();
    push(nodes, wit::Instruction::Sequence(children))
}

fn flatten<P>(
    outline: Outline<P>,
    nodes: &mut Vec<wit::Instruction>,
    steps: &mut HashMap<String, (StepFn<P>, usize)>,
    conditions: &mut HashMap<String, (Condition<P>, usize)>,
) -> u32 {
    let instruction = match outline {
        Outline::Step(name, f) => {
            register(steps, name, f, f as usize, "step");
            wit::Instruction::Step(name.to_string())
        }
        Outline::If(branches) => {
            let branches = branches
                .into_iter()
                .map(|(condition, body)| wit::Branch {
                    condition: condition.map(|(name, f)| {
                        register(conditions, name, f, f as usize, "condition");
                        name.to_string()
                    }),
                    body: flatten_sequence(body, nodes, steps, conditions),
                })
                .collect();
            wit::Instruction::Conditional(branches)
        }
        Outline::While(name, f, body) => {
            register(conditions, name, f, f as usize, "condition");
            let body = flatten_sequence(body, nodes, steps, conditions);
            wit::Instruction::WhileLoop(wit::WhileLoop {
                condition: name.to_string(),
                body,
            })
        }
        Outline::Return(status) => wit::Instruction::Return(status),
    };
    push(nodes, instruction)
}

/// Register `f` under `name`; the same name may appear several times, but always for one function
/// (two functions with identical bodies may share an address, which is harmless).
fn register<F: Copy>(
    map: &mut HashMap<String, (F, usize)>,
    name: &str,
    f: F,
    addr: usize,
    what: &str,
) {
    assert!(!name.is_empty(), "a {what} needs a name");
    let (_, known) = *map.entry(name.to_string()).or_insert((f, addr));
    assert!(
        known == addr,
        "the {what} name '{name}' is used for two different functions"
    );
}

fn push(nodes: &mut Vec<wit::Instruction>, instruction: wit::Instruction) -> u32 {
    nodes.push(instruction);
    u32::try_from(nodes.len() - 1).expect("outline too large")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Next, Spec};

    #[derive(Default)]
    struct P;

    fn yes(_: &P, _: &Ctx) -> Result<bool> {
        Ok(true)
    }

    fn a(_: &mut P, _: &mut Ctx) -> Step {
        Ok(Next::Continue)
    }

    // Not the same body as `a`: the optimiser may merge identical functions into one address.
    fn b(_: &mut P, _: &mut Ctx) -> Step {
        Ok(Next::Kill("b".into()))
    }

    fn flattened(outline: Vec<Outline<P>>) -> wit::Outline {
        let mut spec = Spec::<P>::new();
        spec.outline(outline);
        spec.finish().wit.outline
    }

    #[test]
    fn a_nested_outline_flattens_into_indexed_nodes() {
        let outline = flattened(vec![
            step("a", a),
            while_(
                "yes",
                yes,
                [if_("yes", yes, [step("b", b)]).else_([return_with(3)])],
            ),
        ]);
        let root = &outline.nodes[outline.root as usize];
        let wit::Instruction::Sequence(children) = root else {
            panic!("root is {root:?}")
        };
        assert_eq!(children.len(), 2);
        assert!(
            matches!(&outline.nodes[children[0] as usize], wit::Instruction::Step(s) if s == "a")
        );
        let wit::Instruction::WhileLoop(w) = &outline.nodes[children[1] as usize] else {
            panic!("no while_");
        };
        assert_eq!(w.condition, "yes");
        let wit::Instruction::Sequence(body) = &outline.nodes[w.body as usize] else {
            panic!()
        };
        let wit::Instruction::Conditional(branches) = &outline.nodes[body[0] as usize] else {
            panic!()
        };
        assert_eq!(branches.len(), 2);
        assert_eq!(branches[1].condition, None);
    }

    #[test]
    #[should_panic(expected = "else_ must be the last branch")]
    fn else_after_else_is_refused() {
        let _ = if_("yes", yes, [step("a", a)])
            .else_([step("a", a)])
            .else_([step("a", a)]);
    }

    #[test]
    #[should_panic(expected = "used for two different functions")]
    fn one_name_for_two_steps_is_refused() {
        flattened(vec![step("same", a), step("same", b)]);
    }

    #[test]
    fn one_step_may_appear_twice() {
        let outline = flattened(vec![step("a", a), step("a", a)]);
        assert_eq!(outline.nodes.len(), 3);
    }
}
