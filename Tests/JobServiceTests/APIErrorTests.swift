import Testing

@testable import JobService

@Suite struct APIErrorTests {
    @Test func carriesItsStableCode() {
        let error = APIError(.unprocessableContent, code: "invalid_parameter", message: "bad", field: "steps")
        #expect(error.code == "invalid_parameter")
        #expect(error.field == "steps")
    }
}
