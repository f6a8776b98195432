/// Wakes the job worker when something it waits for may have changed: a job was added, a slot freed, the
/// engine became ready. Signals coalesce: many before one wait count once.
public final class WakeUpSignal: Sendable {
    let signals: AsyncStream<Void>
    private let sink: AsyncStream<Void>.Continuation

    public init() {
        (signals, sink) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    public func signal() { sink.yield() }

    /// Ends the stream (the worker stops waiting).
    func finish() { sink.finish() }
}
