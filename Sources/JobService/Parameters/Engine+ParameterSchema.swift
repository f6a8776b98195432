import Foundation

extension Engine {
    /// The job parameters the service accepts now: the schema of the engine's `hello` (waiting for the first one,
    /// see `waitForHello`), tightened by the service's limits.
    /// - Throws: `APIError.engineUnavailable` when no engine said hello.
    func parameterSchema(configuration: ServiceConfiguration) async throws -> ParameterSchema {
        guard let hello = await waitForHello(timeout: configuration.engine.helloTimeout) else {
            throw APIError.engineUnavailable
        }
        return ParameterSchema(hello: hello, configuration: configuration)
    }
}

extension APIError {
    /// No engine has said what it supports yet (it failed or hangs before `hello`), so options cannot be checked.
    static let engineUnavailable = APIError(
        .serviceUnavailable, code: "engine_unavailable",
        message: "The engine has not started, so the options cannot be checked; try again shortly (see /readyz).")
}
