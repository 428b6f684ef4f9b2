using System.Diagnostics;
using Microsoft.ML.AuxRnn.Data;
using Microsoft.ML.AuxRnn.Model;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.AuxRnn.Training;

/// <summary>What <see cref="AuxLstmTrainer.Train"/> returns.</summary>
internal sealed record TrainingResult(AuxLstmNetwork Network, IReadOnlyList<EpochReport> Epochs);

/// <summary>One epoch's figures, as reported on the log channel.</summary>
internal sealed record EpochReport(int Epoch, bool Pretraining, double SupervisedLoss, double AuxiliaryLoss, double TrainAccuracy, double? ValidationAccuracy, TimeSpan Elapsed);

/// <summary>
/// The training loop. (First version: joint supervised training with full BPTT; the auxiliary losses,
/// truncation schedule and phases are added in Training/.)
/// </summary>
internal sealed class AuxLstmTrainer
{
    private readonly IHost _host;
    private readonly AuxLstmClassifierOptions _options;
    private readonly int _seed;

    public AuxLstmTrainer(IHost host, AuxLstmClassifierOptions options, int seed)
    {
        _host = host;
        _options = options;
        _seed = seed;
    }

    public TrainingResult Train(SequenceDataset train, SequenceDataset? validation, NetworkShape shape, Device device)
    {
        using var ch = _host.Start("Training");
        random.manual_seed(_seed);
        var rng = new Random(_seed);
        var network = new AuxLstmNetwork(shape);
        network.to(device);
        var optimizer = optim.RMSProp(network.parameters(), lr: _options.LearningRate);
        var reports = new List<EpochReport>();
        int[] order = Enumerable.Range(0, train.Count).ToArray();
        for (int epoch = 1; epoch <= _options.Epochs; epoch++)
        {
            var watch = Stopwatch.StartNew();
            rng.Shuffle(order);
            double lossSum = 0;
            int correct = 0, seen = 0;
            network.train();
            for (int start = 0; start < order.Length; start += _options.BatchSize)
            {
                _host.CheckAlive();
                int count = Math.Min(_options.BatchSize, order.Length - start);
                var batch = train.GetBatch(order.AsSpan(start, count));
                using var scope = NewDisposeScope();
                var x = network.Encode(batch, device);
                var (y, _, _) = network.Lstm.forward(x);
                var logits = network.Classify(AuxLstmNetwork.GatherLast(y, batch.Lengths, 0));
                var labels = tensor(batch.Labels, device: device);
                var loss = nn.functional.cross_entropy(logits, labels);
                optimizer.zero_grad();
                loss.backward();
                if (_options.GradientClipNorm > 0)
                    nn.utils.clip_grad_norm_(network.parameters(), _options.GradientClipNorm);
                optimizer.step();
                lossSum += loss.item<float>() * count;
                correct += (int)logits.argmax(1).eq(labels).sum().item<long>();
                seen += count;
            }

            var report = new EpochReport(epoch, false, lossSum / seen, 0, (double)correct / seen, null, watch.Elapsed);
            reports.Add(report);
            ch.Info($"Epoch {epoch}/{_options.Epochs}: loss {report.SupervisedLoss:F4}, accuracy {report.TrainAccuracy:P1}, {report.Elapsed.TotalSeconds:F1} s");
        }

        network.eval();
        return new TrainingResult(network, reports);
    }
}
