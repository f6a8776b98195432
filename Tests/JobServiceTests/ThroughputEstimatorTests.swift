import Testing

@testable import JobService

@Suite("ThroughputEstimator learns the engine's speed from finished jobs")
struct ThroughputEstimatorTests {
    @Test func beforeAnyJobTheEnginesPriorHolds() {
        let estimator = ThroughputEstimator(prior: 0.5)
        #expect(estimator.expectedSeconds(forAudio: 10) == 5)
    }

    @Test func theRateIsTheMiddleOfTheRecentJobs() {
        // Given jobs at 1, 2 and 4 seconds of compute per second of audio
        let estimator = ThroughputEstimator(prior: 30)
        for computeSeconds in [10.0, 20, 40] { estimator.record(computeSeconds: computeSeconds, audioSeconds: 10) }
        // Then the estimate uses the middle one
        #expect(estimator.secondsPerAudioSecond == 2)
        // And with an even count, the mean of the two middle ones
        estimator.record(computeSeconds: 30, audioSeconds: 10)
        #expect(estimator.secondsPerAudioSecond == 2.5)
    }

    @Test func oneOddJobCannotMultiplyEveryEstimate() {
        // Given a steady engine at 1 s of compute per second of audio
        let estimator = ThroughputEstimator(prior: 30)
        for _ in 0..<5 { estimator.record(computeSeconds: 10, audioSeconds: 10) }
        // When one job took 30 times longer than its audio suggested (e.g. its header claimed 2 s, it ran 60 s)
        estimator.record(computeSeconds: 60, audioSeconds: 2)
        // Then the estimates stay where the other jobs put them
        #expect(estimator.expectedSeconds(forAudio: 100) == 100)
    }

    @Test func onlyTheLastWindowOfJobsCounts() {
        // Given a window of 3 that saw a slow engine, then a fast one
        let estimator = ThroughputEstimator(prior: 30, window: 3)
        for _ in 0..<3 { estimator.record(computeSeconds: 50, audioSeconds: 10) }
        for _ in 0..<3 { estimator.record(computeSeconds: 5, audioSeconds: 10) }
        // Then only the fast jobs count
        #expect(estimator.secondsPerAudioSecond == 0.5)
    }
}
