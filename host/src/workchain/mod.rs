//! Work-chain outlines: the tree of steps, conditions and loops a plugin declares, and the
//! [`Cursor`] that says where a process is in it.
//!
//! **Architecture invariant:** pure. The host asks the outline what to call next
//! ([`Outline::next`]), calls the plugin, and feeds the answer back ([`Outline::step_done`],
//! [`Outline::condition`]). A cursor is plain data, so it can be printed, saved in a checkpoint
//! and restored between any two calls.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// One node of an outline as a plugin declares it: a flat list that refers to nodes by index
/// (the WIT world has no recursive types).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A step, by name.
    Step(String),
    /// These nodes, in order.
    Sequence(Vec<u32>),
    /// `(condition, body)` branches; a `None` condition is the `else_` and comes last.
    Conditional(Vec<(Option<String>, u32)>),
    /// `while_(condition)(body)`.
    While(String, u32),
    /// `return_`, with an exit status (none means 0).
    Return(Option<u32>),
}

/// An outline instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Instruction {
    /// Call this step.
    Step(String),
    /// Run these in order.
    Sequence(Vec<Instruction>),
    /// `if_` / `elif_` / `else_`.
    If(Vec<Branch>),
    /// `while_(condition)(body)`.
    While {
        /// The condition, by name.
        condition: String,
        /// What runs while it holds.
        body: Box<Instruction>,
    },
    /// `return_`, with an exit status (none means 0).
    Return(Option<u32>),
}

/// A branch of an [`Instruction::If`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Branch {
    /// The condition; `None` for `else_`.
    pub condition: Option<String>,
    /// What runs when it holds.
    pub body: Instruction,
}

/// A malformed outline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OutlineError {
    #[error("outline node {index} does not exist (the outline has {len} nodes)")]
    /// A node refers to one that does not exist.
    NoSuchNode {
        /// The missing node.
        index: u32,
        /// How many there are.
        len: usize,
    },
    #[error("outline node {index} is used twice: an outline must be a tree")]
    /// A node is used twice.
    Shared {
        /// The node.
        index: u32,
    },
    #[error("outline node {index}: {what} needs a name")]
    /// A step or condition has an empty name.
    Unnamed {
        /// The node.
        index: u32,
        /// What lacks a name.
        what: &'static str,
    },
    #[error("outline node {index}: an if_ needs at least one branch with a condition first")]
    /// An `if_` with no branch, or one that starts with `else_`.
    EmptyIf {
        /// The node.
        index: u32,
    },
    #[error("outline node {index}: else_ must be the last branch of an if_")]
    /// An `else_` before the last branch.
    ElseNotLast {
        /// The node.
        index: u32,
    },
    #[error("the outline has no steps")]
    /// Nothing to run.
    NoSteps,
}

/// What the host must do next to advance a process along its outline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call<'a> {
    /// Run this step, then report with [`Outline::step_done`].
    Step(&'a str),
    /// Evaluate this condition, then report with [`Outline::condition`].
    Condition(&'a str),
    /// A `return_` was reached: end with this exit status (none means 0).
    Return(Option<u32>),
    /// The outline is complete.
    Done,
}

/// A validated outline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Outline {
    root: Instruction,
}

/// Where a process is in its outline: plain data, saved with every checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cursor {
    /// At a step.
    Step {
        /// Whether it has run.
        done: bool,
    },
    /// At a `return_`.
    Return,
    /// In a sequence.
    Sequence {
        /// The part it is in.
        index: usize,
        /// Where it is in that part, once entered.
        current: Option<Box<Cursor>>,
    },
    /// In an `if_`.
    If {
        /// How many conditions were false so far.
        tried: usize,
        /// Where it is in the body of branch `tried`, once entered.
        chosen: Option<Box<Cursor>>,
    },
    /// In a `while_`.
    While {
        /// Where it is in the body, during an iteration.
        body: Option<Box<Cursor>>,
        /// Whether the condition was false: the loop is over.
        done: bool,
        /// How many iterations have begun.
        iterations: u64,
    },
}

impl Outline {
    /// Build the outline tree from declared nodes, checking that it is well formed.
    pub fn from_nodes(nodes: &[Node], root: u32) -> Result<Self, OutlineError> {
        let mut used = vec![false; nodes.len()];
        let root = build(nodes, root, &mut used)?;
        let outline = Self { root };
        if !outline.has_steps(&outline.root) {
            return Err(OutlineError::NoSteps);
        }
        Ok(outline)
    }

    fn has_steps(&self, ins: &Instruction) -> bool {
        match ins {
            Instruction::Step(_) | Instruction::Return(_) => true,
            Instruction::Sequence(children) => children.iter().any(|c| self.has_steps(c)),
            Instruction::If(_) | Instruction::While { .. } => true,
        }
    }

    /// The root instruction.
    pub fn root(&self) -> &Instruction {
        &self.root
    }

    /// A cursor at the start of the outline.
    pub fn start(&self) -> Cursor {
        start(&self.root)
    }

    /// What to call next from `cursor` (which it may move past completed parts).
    pub fn next<'a>(&'a self, cursor: &mut Cursor) -> Call<'a> {
        next(&self.root, cursor)
    }

    /// Report that the step returned by [`next`](Self::next) has run.
    pub fn step_done(&self, cursor: &mut Cursor) {
        answer(&self.root, cursor, None);
    }

    /// Report the value of the condition returned by [`next`](Self::next).
    pub fn condition(&self, cursor: &mut Cursor, value: bool) {
        answer(&self.root, cursor, Some(value));
    }

    /// The position as a string in the manner of plumpy's stepper, e.g.
    /// `1:while_(above_one)(0:if_(is_even)(0:halve))`.
    pub fn position(&self, cursor: &Cursor) -> String {
        let mut out = String::new();
        position(&self.root, cursor, &mut out);
        out
    }

    /// The position of a process at rest at `cursor` (between two calls), as plumpy's stepper
    /// names it: the next thing to run — `1:step2` once `0:step1` is done, `1:while_(more)`
    /// once an iteration's last step is — found without calling anything. `None` when the
    /// outline has nothing left to run.
    pub fn position_at_rest(&self, cursor: &Cursor) -> Option<String> {
        let mut ahead = cursor.clone();
        match next(&self.root, &mut ahead) {
            Call::Done => None,
            _ => Some(self.position(&ahead)),
        }
    }
}

fn build(nodes: &[Node], index: u32, used: &mut [bool]) -> Result<Instruction, OutlineError> {
    let i = index as usize;
    let node = nodes.get(i).ok_or(OutlineError::NoSuchNode {
        index,
        len: nodes.len(),
    })?;
    if std::mem::replace(&mut used[i], true) {
        return Err(OutlineError::Shared { index });
    }
    Ok(match node {
        Node::Step(name) if name.is_empty() => {
            return Err(OutlineError::Unnamed {
                index,
                what: "a step",
            });
        }
        Node::Step(name) => Instruction::Step(name.clone()),
        Node::Sequence(children) => Instruction::Sequence(
            children
                .iter()
                .map(|&c| build(nodes, c, used))
                .collect::<Result<_, _>>()?,
        ),
        Node::Conditional(branches) => {
            if branches.first().is_none_or(|(c, _)| c.is_none()) {
                return Err(OutlineError::EmptyIf { index });
            }
            let mut built = Vec::with_capacity(branches.len());
            for (n, (condition, body)) in branches.iter().enumerate() {
                match condition {
                    None if n + 1 != branches.len() => {
                        return Err(OutlineError::ElseNotLast { index });
                    }
                    Some(c) if c.is_empty() => {
                        return Err(OutlineError::Unnamed {
                            index,
                            what: "a condition",
                        });
                    }
                    _ => {}
                }
                built.push(Branch {
                    condition: condition.clone(),
                    body: build(nodes, *body, used)?,
                });
            }
            Instruction::If(built)
        }
        Node::While(condition, _) if condition.is_empty() => {
            return Err(OutlineError::Unnamed {
                index,
                what: "a while_ condition",
            });
        }
        Node::While(condition, body) => Instruction::While {
            condition: condition.clone(),
            body: Box::new(build(nodes, *body, used)?),
        },
        Node::Return(status) => Instruction::Return(*status),
    })
}

fn start(ins: &Instruction) -> Cursor {
    match ins {
        Instruction::Step(_) => Cursor::Step { done: false },
        Instruction::Return(_) => Cursor::Return,
        Instruction::Sequence(_) => Cursor::Sequence {
            index: 0,
            current: None,
        },
        Instruction::If(_) => Cursor::If {
            tried: 0,
            chosen: None,
        },
        Instruction::While { .. } => Cursor::While {
            body: None,
            done: false,
            iterations: 0,
        },
    }
}

fn next<'a>(ins: &'a Instruction, cursor: &mut Cursor) -> Call<'a> {
    match (ins, cursor) {
        (Instruction::Step(name), Cursor::Step { done }) => {
            if *done {
                Call::Done
            } else {
                Call::Step(name)
            }
        }
        (Instruction::Return(status), Cursor::Return) => Call::Return(*status),
        (Instruction::Sequence(children), Cursor::Sequence { index, current }) => loop {
            let Some(child) = children.get(*index) else {
                return Call::Done;
            };
            let cur = current.get_or_insert_with(|| Box::new(start(child)));
            match next(child, cur) {
                Call::Done => {
                    *index += 1;
                    *current = None;
                }
                call => return call,
            }
        },
        (Instruction::If(branches), Cursor::If { tried, chosen }) => {
            let Some(branch) = branches.get(*tried) else {
                return Call::Done;
            };
            if let Some(body) = chosen {
                return next(&branch.body, body);
            }
            match &branch.condition {
                Some(condition) => Call::Condition(condition),
                None => next(&branch.body, chosen.insert(Box::new(start(&branch.body)))),
            }
        }
        (
            Instruction::While { condition, body },
            Cursor::While {
                body: cur, done, ..
            },
        ) => {
            if *done {
                return Call::Done;
            }
            if let Some(c) = cur {
                match next(body, c) {
                    Call::Done => *cur = None,
                    call => return call,
                }
            }
            Call::Condition(condition)
        }
        (_, cursor) => {
            // A cursor that does not fit the outline (e.g. restored for another plugin version)
            // restarts that part rather than panicking; persistence checks digests first.
            *cursor = start(ins);
            next(ins, cursor)
        }
    }
}

/// Feed the answer to the call `next` returned: `None` for a step, `Some(v)` for a condition.
fn answer(ins: &Instruction, cursor: &mut Cursor, value: Option<bool>) {
    match (ins, cursor) {
        (Instruction::Step(_), Cursor::Step { done }) => *done = true,
        (
            Instruction::Sequence(children),
            Cursor::Sequence {
                index,
                current: Some(cur),
            },
        ) => {
            answer(&children[*index], cur, value);
        }
        (Instruction::If(branches), Cursor::If { tried, chosen }) => match chosen {
            Some(body) => answer(&branches[*tried].body, body, value),
            None if value == Some(true) => {
                *chosen = Some(Box::new(start(&branches[*tried].body)));
            }
            None => *tried += 1,
        },
        (
            Instruction::While { body, .. },
            Cursor::While {
                body: cur,
                done,
                iterations,
            },
        ) => match cur {
            Some(c) => answer(body, c, value),
            None if value == Some(true) => {
                *cur = Some(Box::new(start(body)));
                *iterations += 1;
            }
            None => *done = true,
        },
        _ => {}
    }
}

fn position(ins: &Instruction, cursor: &Cursor, out: &mut String) {
    match (ins, cursor) {
        (Instruction::Step(name), _) => out.push_str(name),
        (Instruction::Return(_), _) => out.push_str("return_"),
        (Instruction::Sequence(children), Cursor::Sequence { index, current }) => {
            let _ = write!(out, "{index}");
            if let (Some(child), Some(cur)) = (children.get(*index), current) {
                out.push(':');
                position(child, cur, out);
            }
        }
        (Instruction::If(branches), Cursor::If { tried, chosen }) => {
            let Some(branch) = branches.get(*tried) else {
                return out.push_str("if_");
            };
            match &branch.condition {
                Some(c) if *tried == 0 => {
                    let _ = write!(out, "if_({c})");
                }
                Some(c) => {
                    let _ = write!(out, "elif_({c})");
                }
                None => out.push_str("else_"),
            }
            if let Some(cur) = chosen {
                out.push('(');
                position(&branch.body, cur, out);
                out.push(')');
            }
        }
        (Instruction::While { condition, body }, Cursor::While { body: cur, .. }) => {
            let _ = write!(out, "while_({condition})");
            if let Some(cur) = cur {
                out.push('(');
                position(body, cur, out);
                out.push(')');
            }
        }
        _ => out.push('?'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `s1, if_(isA)(s2).elif_(isB)(s3).else_(s4), s5, while_(ltN)(s6)` (plumpy's test_run).
    fn s39() -> Outline {
        let nodes = vec![
            Node::Step("s1".into()), // 0
            Node::Step("s2".into()), // 1
            Node::Sequence(vec![1]), // 2
            Node::Step("s3".into()), // 3
            Node::Sequence(vec![3]), // 4
            Node::Step("s4".into()), // 5
            Node::Sequence(vec![5]), // 6
            Node::Conditional(vec![
                (Some("isA".into()), 2),
                (Some("isB".into()), 4),
                (None, 6),
            ]), // 7
            Node::Step("s5".into()), // 8
            Node::Step("s6".into()), // 9
            Node::Sequence(vec![9]), // 10
            Node::While("ltN".into(), 10), // 11
            Node::Sequence(vec![0, 7, 8, 11]), // 12
        ];
        Outline::from_nodes(&nodes, 12).unwrap()
    }

    /// Walk the outline, answering conditions from `answers`, and list every call.
    fn walk(outline: &Outline, mut answer: impl FnMut(&str) -> bool) -> Vec<String> {
        let mut cursor = outline.start();
        let mut calls = Vec::new();
        loop {
            match outline.next(&mut cursor) {
                Call::Step(s) => {
                    calls.push(s.to_string());
                    outline.step_done(&mut cursor);
                }
                Call::Condition(c) => {
                    calls.push(format!("{c}?"));
                    let v = answer(c);
                    outline.condition(&mut cursor, v);
                }
                Call::Return(s) => {
                    calls.push(format!("return {s:?}"));
                    return calls;
                }
                Call::Done => return calls,
            }
        }
    }

    #[test]
    fn if_elif_else_and_while_run_the_right_steps() {
        let outline = s39();
        for (value, expected) in [("A", "s2"), ("B", "s3"), ("C", "s4")] {
            let mut n = 0;
            let calls = walk(&outline, |c| match c {
                "isA" => value == "A",
                "isB" => value == "B",
                "ltN" => {
                    n += 1;
                    n <= 3
                }
                _ => unreachable!(),
            });
            let steps: Vec<_> = calls
                .iter()
                .filter(|c| c.starts_with('s'))
                .cloned()
                .collect();
            assert_eq!(
                steps,
                ["s1", expected, "s5", "s6", "s6", "s6"],
                "value {value}"
            );
        }
    }

    #[test]
    fn return_ends_the_outline() {
        let nodes = vec![
            Node::Step("a".into()),
            Node::Return(Some(3)),
            Node::Step("never".into()),
            Node::Sequence(vec![0, 1, 2]),
        ];
        let outline = Outline::from_nodes(&nodes, 3).unwrap();
        assert_eq!(walk(&outline, |_| true), ["a", "return Some(3)"]);
    }

    /// Run `s39` with isA false, isB true and ltN true until four steps have run: the
    /// position as each step runs, the position at rest after it, and the cursor at the end.
    fn s39_positions(outline: &Outline) -> (Vec<String>, Vec<Option<String>>, Cursor) {
        let mut cursor = outline.start();
        let (mut running, mut at_rest) = (Vec::new(), Vec::new());
        loop {
            match outline.next(&mut cursor) {
                Call::Step(_) => {
                    running.push(outline.position(&cursor));
                    outline.step_done(&mut cursor);
                    at_rest.push(outline.position_at_rest(&cursor));
                }
                Call::Condition(c) => {
                    let value = c == "isB" || c == "ltN" && running.len() < 4;
                    outline.condition(&mut cursor, value);
                }
                _ => return (running, at_rest, cursor),
            }
        }
    }

    #[test]
    fn the_position_reads_like_plumpys_stepper() {
        let (running, _, _) = s39_positions(&s39());
        assert_eq!(running[0], "0:s1");
        assert_eq!(running[1], "1:elif_(isB)(0:s3)");
        assert_eq!(running[3], "3:while_(ltN)(0:s6)");
    }

    #[test]
    fn at_rest_the_position_names_the_next_thing_to_run_as_plumpys_stepper_does() {
        let outline = s39();
        let (_, at_rest, cursor) = s39_positions(&outline);
        let at_rest: Vec<_> = at_rest.iter().map(|p| p.as_deref()).collect();
        assert_eq!(
            at_rest,
            [
                Some("1:if_(isA)"),    // s1 done: the if_ comes next, its conditions untried
                Some("2:s5"),          // s3, in the elif_, done
                Some("3:while_(ltN)"), // s5 done: the loop's condition next
                Some("3:while_(ltN)"), // an iteration of s6 done: the condition again
            ]
        );
        assert_eq!(outline.position_at_rest(&cursor), None, "nothing left");
    }

    #[test]
    fn a_cursor_survives_serialisation_mid_loop() {
        let outline = s39();
        let mut cursor = outline.start();
        // s1, isA? no, isB? yes, s3, s5, ltN? yes -> in s6
        for _ in 0..6 {
            match outline.next(&mut cursor) {
                Call::Step(_) => outline.step_done(&mut cursor),
                Call::Condition(c) => outline.condition(&mut cursor, c != "isA"),
                other => panic!("{other:?}"),
            }
        }
        let saved = serde_json::to_string(&cursor).unwrap();
        let mut restored: Cursor = serde_json::from_str(&saved).unwrap();
        assert_eq!(outline.next(&mut restored), Call::Step("s6"));
    }

    #[test]
    fn malformed_outlines_are_refused() {
        let shared = vec![Node::Step("a".into()), Node::Sequence(vec![0, 0])];
        assert_eq!(
            Outline::from_nodes(&shared, 1),
            Err(OutlineError::Shared { index: 0 })
        );
        let missing = vec![Node::Sequence(vec![4])];
        assert!(matches!(
            Outline::from_nodes(&missing, 0),
            Err(OutlineError::NoSuchNode { .. })
        ));
        let else_first = vec![Node::Step("a".into()), Node::Conditional(vec![(None, 0)])];
        assert_eq!(
            Outline::from_nodes(&else_first, 1),
            Err(OutlineError::EmptyIf { index: 1 })
        );
        let empty = vec![Node::Sequence(vec![])];
        assert_eq!(Outline::from_nodes(&empty, 0), Err(OutlineError::NoSteps));
    }
}
