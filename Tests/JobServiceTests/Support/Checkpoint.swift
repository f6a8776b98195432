import Foundation
import Synchronization

/// A place in a call where a test holds callers until it opens it, and learns how many arrived: it orders what
/// concurrent tasks do without sleeping.
final class Checkpoint: Sendable {
    private struct State {
        var isOpen: Bool
        var arrivals = 0
        var held: [CheckedContinuation<Void, Never>] = []
        var arrivalWaiters: [(id: UUID, count: Int, continuation: CheckedContinuation<Void, Never>)] = []
        /// Waits cancelled before they were registered.
        var cancelledWaits: Set<UUID> = []
    }

    private let state: Mutex<State>

    init(open: Bool = false) {
        state = Mutex(State(isOpen: open))
    }

    /// Called by the code under test: counts the arrival and waits while the checkpoint is closed.
    func pass() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let (reached, goOn) = state.withLock { state in
                state.arrivals += 1
                let reached = state.arrivalWaiters.filter { $0.count <= state.arrivals }.map(\.continuation)
                state.arrivalWaiters.removeAll { $0.count <= state.arrivals }
                if !state.isOpen { state.held.append(continuation) }
                return (reached, state.isOpen)
            }
            for waiter in reached { waiter.resume() }
            if goOn { continuation.resume() }
        }
    }

    /// Lets everyone held go on, and every later caller pass.
    func open() {
        let held = state.withLock { state in
            state.isOpen = true
            defer { state.held.removeAll() }
            return state.held
        }
        for caller in held { caller.resume() }
    }

    /// Waits until `count` callers arrived in all; returns early when the task is cancelled (a time-out guard).
    func waitForArrivals(_ count: Int) async {
        let id = UUID()
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let goOn = state.withLock { state in
                    if state.cancelledWaits.remove(id) != nil || state.arrivals >= count { return true }
                    state.arrivalWaiters.append((id, count, continuation))
                    return false
                }
                if goOn { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                guard let index = state.arrivalWaiters.firstIndex(where: { $0.id == id }) else {
                    state.cancelledWaits.insert(id)
                    return nil
                }
                return state.arrivalWaiters.remove(at: index).continuation
            }
            waiter?.resume()
        }
    }
}
