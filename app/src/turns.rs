//! Taking turns: one holder at a time, the others waiting in the order they asked.
//! Work that spans several tasks and must not overlap itself takes a turn first: loads
//! onto a device page-wide (`page_engine`), and a needle run that starts while the
//! stopped one still finishes its trial.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use futures_channel::oneshot;

/// A queue of turns (cloning it shares the queue).
#[derive(Clone, Default)]
pub struct Turns(Rc<RefCell<Queue>>);

#[derive(Default)]
struct Queue {
    busy: bool,
    waiting: VecDeque<oneshot::Sender<Turn>>,
}

/// A turn. Dropping it hands it to the next waiter; a turn sent to a waiter that went
/// away is dropped with its channel and so passes on too.
pub struct Turn(Turns);

impl Drop for Turn {
    fn drop(&mut self) {
        let next = {
            let mut queue = (self.0).0.borrow_mut();
            let next = queue.waiting.pop_front();
            queue.busy = next.is_some();
            next
        };
        // Outside the borrow: a refused turn comes back and is dropped, passing on.
        if let Some(next) = next {
            let _ = next.send(Turn(self.0.clone()));
        }
    }
}

impl Turns {
    /// Waits for the turn (at once when nobody holds it).
    pub async fn take(&self) -> Turn {
        let wait = {
            let mut queue = self.0.borrow_mut();
            if !queue.busy {
                queue.busy = true;
                None
            } else {
                let (send, receive) = oneshot::channel();
                queue.waiting.push_back(send);
                Some(receive)
            }
        };
        match wait {
            None => Turn(self.clone()),
            // A sender is only dropped unsent when the queue itself goes away.
            Some(receive) => receive.await.unwrap_or_else(|_| Turn(self.clone())),
        }
    }

    /// Whether someone holds the turn now.
    pub fn busy(&self) -> bool {
        self.0.borrow().busy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    fn poll<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn turns_pass_in_order_and_skip_waiters_that_left() {
        let turns = Turns::default();
        let Poll::Ready(first) = poll(pin!(turns.take())) else {
            panic!("a free queue waits");
        };
        assert!(turns.busy());
        let mut second = Box::pin(turns.take());
        let mut gone = Box::pin(turns.take());
        let mut third = Box::pin(turns.take());
        assert!(poll(second.as_mut()).is_pending());
        assert!(poll(gone.as_mut()).is_pending());
        assert!(poll(third.as_mut()).is_pending());
        drop(gone);
        drop(first);
        let Poll::Ready(second) = poll(second.as_mut()) else {
            panic!("the second waiter did not get the turn");
        };
        assert!(poll(third.as_mut()).is_pending());
        drop(second);
        let Poll::Ready(third) = poll(third.as_mut()) else {
            panic!("the turn did not skip the waiter that left");
        };
        drop(third);
        assert!(!turns.busy());
    }
}
