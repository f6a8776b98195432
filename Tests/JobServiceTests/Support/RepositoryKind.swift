import Testing

@testable import JobService

/// Each `JobRepository` implementation, for tests that run against all of them.
enum RepositoryKind: CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case memory

    /// A new, empty store.
    func make() throws -> any JobRepository {
        switch self {
        case .sqlite: try GRDBJobRepository.inMemory()
        case .memory: MemoryJobRepository()
        }
    }

    var testDescription: String {
        switch self {
        case .sqlite: "SQLite"
        case .memory: "memory"
        }
    }
}
