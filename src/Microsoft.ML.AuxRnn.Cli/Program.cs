using Microsoft.ML.AuxRnn.Cli;

return AuxRnnCli.Run(args);
