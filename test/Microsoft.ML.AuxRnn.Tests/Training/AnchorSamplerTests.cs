using Microsoft.ML.AuxRnn.Data;
using Microsoft.ML.AuxRnn.Training;
using static TorchSharp.torch;

namespace Microsoft.ML.AuxRnn.Tests.Training;

public class AnchorSamplerTests
{
    private static int[] RandomLengths(Random rng, int count) => Enumerable.Range(0, count).Select(_ => rng.Next(1, 60)).ToArray();

    [Theory]
    [InlineData(AuxiliaryLoss.Reconstruct, 20, 0, 0)]
    [InlineData(AuxiliaryLoss.Reconstruct, 20, 15, 0)]
    [InlineData(AuxiliaryLoss.Reconstruct, 20, 0, 7)]
    [InlineData(AuxiliaryLoss.Reconstruct, 8, 30, 5)]
    [InlineData(AuxiliaryLoss.Predict, 20, 0, 0)]
    [InlineData(AuxiliaryLoss.Predict, 3, 0, 0)]
    public void SegmentsStayInsideEachRowsRealLength(AuxiliaryLoss loss, int segmentLength, int distantPast, int spill)
    {
        var sampler = new AnchorSampler(loss, segmentLength, perSequence: 3, reverse: true, distantPast, spill);
        var rng = new Random(11);
        for (int draw = 0; draw < 200; draw++)
        {
            var lengths = RandomLengths(rng, 8);
            var segments = sampler.Sample(lengths, rng);
            segments.Should().HaveCount(3 * lengths.Count(l => l >= 2), "3 anchors per row long enough to predict something");
            foreach (var s in segments)
            {
                int length = lengths[s.Row];
                s.Start.Should().BeGreaterThanOrEqualTo(0);
                s.End.Should().BeLessThanOrEqualTo(length, $"segment {s} of a row of {length} steps");
                s.Length.Should().BeInRange(1, segmentLength);
                if (loss == AuxiliaryLoss.Reconstruct)
                {
                    s.Anchor.Should().BeInRange(2, length);
                    s.Reverse.Should().BeTrue();
                    s.Length.Should().BeGreaterThanOrEqualTo(2, "the decoder is fed one step and predicts at least one");
                    s.End.Should().BeLessThanOrEqualTo(s.Anchor + spill, "at most SpillPastAnchor steps lie past the anchor");
                    s.End.Should().BeGreaterThanOrEqualTo(Math.Min(s.Anchor, Math.Max(2, s.Anchor - distantPast)), "the segment ends at most DistantPastRange before the anchor");
                    s.Length.Should().Be(Math.Min(segmentLength, s.End), "a segment is shorter only where the row's start cuts it");
                }
                else
                {
                    s.Anchor.Should().BeInRange(1, length - 1);
                    s.Reverse.Should().BeFalse();
                    s.Start.Should().Be(s.Anchor, "p-LSTM predicts the steps from the anchor on");
                    s.Length.Should().Be(Math.Min(segmentLength, length - s.Anchor), "a segment is shorter only where the row's end cuts it");
                }
            }
        }
    }

    [Theory]
    [InlineData(AuxiliaryLoss.Reconstruct)]
    [InlineData(AuxiliaryLoss.Predict)]
    public void AnchorsCoverEachRowsWholeLength(AuxiliaryLoss loss)
    {
        // 784-step rows (pixel MNIST) with 600-step segments: anchors fall evenly over the whole row, not only at one end.
        const int length = 784;
        var sampler = new AnchorSampler(loss, 600, 1, true, 0, 0);
        var rng = new Random(3);
        var histogram = new int[8];
        var covered = new int[length];
        for (int draw = 0; draw < 40; draw++)
        {
            foreach (var s in sampler.Sample(Enumerable.Repeat(length, 500).ToArray(), rng))
            {
                histogram[s.Anchor * 8 / (length + 1)]++;
                for (int t = s.Start; t < s.End; t++)
                    covered[t]++;
            }
        }
        int total = histogram.Sum();
        histogram.Should().OnlyContain(n => Math.Abs(n - total / 8.0) < 0.05 * total / 8.0, $"anchors are uniform over the row (bins: {string.Join(", ", histogram)})");
        // p-LSTM predicts every step but the first (nothing comes before it to predict it from).
        covered.Skip(loss == AuxiliaryLoss.Predict ? 1 : 0).Should().OnlyContain(n => n > 0, "every step is reconstructed or predicted by some segment");
    }

    [Fact]
    public void ShortRowsGetRandomAnchorsToo()
    {
        // Rows no longer than a segment (most documents) still get anchors at many positions.
        var sampler = new AnchorSampler(AuxiliaryLoss.Reconstruct, 600, 1, true, 0, 0);
        var segments = sampler.Sample(Enumerable.Repeat(300, 1000).ToArray(), new Random(4));
        segments.Select(s => s.Anchor).Distinct().Count().Should().BeGreaterThan(250);
        segments.Should().OnlyContain(s => s.Start == 0 && s.End == s.Anchor, "the segment is the whole past, cut at the row's start");
    }

    [Fact]
    public void DistantPastAndSpillMoveTheSegmentBothWays()
    {
        var sampler = new AnchorSampler(AuxiliaryLoss.Reconstruct, 10, 1, true, distantPast: 20, spill: 5);
        var segments = sampler.Sample(Enumerable.Repeat(100, 1000).ToArray(), new Random(2));
        segments.Should().Contain(s => s.End < s.Anchor - 10, "segments come from the distant past");
        segments.Should().Contain(s => s.End > s.Anchor, "segments spill past the anchor");
        segments.Should().Contain(s => s.End == s.Anchor);
    }

    [Fact]
    public void NoAuxiliaryLossSamplesNothing()
    {
        new AnchorSampler(AuxiliaryLoss.None, 10, 2, true, 0, 0).Sample(new[] { 50, 60 }, new Random(1)).Should().BeEmpty();
    }

    [Fact]
    public void SameRandomStreamSameAnchors()
    {
        var sampler = new AnchorSampler(AuxiliaryLoss.Predict, 10, 2, false, 0, 0);
        var lengths = new[] { 50, 20, 70 };
        sampler.Sample(lengths, new Random(5)).Should().Equal(sampler.Sample(lengths, new Random(5)));
        sampler.Sample(lengths, new Random(5)).Should().NotEqual(sampler.Sample(lengths, new Random(6)));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void SegmentsAreGatheredInTheDecodersReadingOrder(bool reverse)
    {
        var data = SequenceDataset.Discrete(100);
        data.AddTokens(Enumerable.Range(10, 30).ToArray(), 0);  // tokens 10..39
        data.AddTokens(Enumerable.Range(50, 8).ToArray(), 1);   // tokens 50..57, padded in the batch
        var batch = data.GetBatch(new[] { 0, 1 });
        var segments = new[] { new AuxSegment(0, 25, 15, 6, reverse), new AuxSegment(1, 8, 4, 4, reverse) };

        using var gathered = AuxObjective.GatherSegments(batch, segments, CPU);

        gathered.shape.Should().Equal(2, 6);
        var rows = gathered.data<long>().ToArray();
        long[] first = { 25, 26, 27, 28, 29, 30 };   // steps 15..20
        long[] second = { 54, 55, 56, 57 };          // steps 4..7
        rows.Take(6).Should().Equal(reverse ? first.Reverse() : first);
        rows.Skip(6).Take(4).Should().Equal(reverse ? second.Reverse() : second);
        rows.Skip(10).Should().Equal(0, 0);
    }

    [Fact]
    public void ContinuousSegmentsKeepEachStepsValuesTogether()
    {
        var data = SequenceDataset.Continuous(2);
        data.AddValues(Enumerable.Range(0, 20).Select(v => (float)v).ToArray(), 0); // step t = (2t, 2t+1)
        var batch = data.GetBatch(new[] { 0 });
        using var gathered = AuxObjective.GatherSegments(batch, new[] { new AuxSegment(0, 6, 3, 3, true) }, CPU);
        gathered.shape.Should().Equal(1, 3, 2);
        gathered.data<float>().ToArray().Should().Equal(10, 11, 8, 9, 6, 7);
    }

    [Fact]
    public void SegmentsOutsideTheRowAreRejected()
    {
        var data = SequenceDataset.Discrete(10);
        data.AddTokens(new[] { 1, 2, 3, 4 }, 0);
        data.AddTokens(new[] { 1, 2, 3, 4, 5, 6, 7, 8 }, 0);
        var batch = data.GetBatch(new[] { 0, 1 });
        var act = () => AuxObjective.GatherSegments(batch, new[] { new AuxSegment(0, 4, 2, 4, false) }, CPU);
        act.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*outside row 0*");
    }
}
