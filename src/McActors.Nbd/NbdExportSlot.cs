namespace McActors.Nbd;

/// <summary>
/// A node's one export: the volume while this node is primary (attached by the NBD guest actor when
/// the primary role starts, detached when it stops), otherwise nothing, and a refusal that names
/// where the primary serves NBD instead. Thread-safe: connections look up, actors attach.
/// </summary>
public sealed class NbdExportSlot(string exportName, string nodeName) : INbdExportSource
{
    private readonly Lock _lock = new();
    private INbdExport? _export;
    private string? _primary;
    private string? _primaryNbd;

    public string ExportName { get; } = exportName;

    public IReadOnlyList<string> Names => [ExportName];

    public INbdExport? Current
    {
        get
        {
            lock (_lock)
                return _export;
        }
    }

    public void Attach(INbdExport export)
    {
        lock (_lock)
            _export = export;
    }

    /// <summary>Detaches <paramref name="export"/> if it is the current one (a newer one may already be attached).</summary>
    public void Detach(INbdExport export)
    {
        lock (_lock)
        {
            if (ReferenceEquals(_export, export))
                _export = null;
        }
    }

    /// <summary>The coordinator's latest word on who is primary and where it serves NBD.</summary>
    public void SetPrimary(string? primary, string? primaryNbd)
    {
        lock (_lock)
            (_primary, _primaryNbd) = (primary, primaryNbd);
    }

    public INbdExport? Find(string name, out uint refusal, out string message)
    {
        if (name.Length > 0 && name != ExportName)
        {
            (refusal, message) = (NbdProtocol.RepErrUnknown, $"no export named '{name}': this server exports '{ExportName}' (also the default, '')");
            return null;
        }
        lock (_lock)
        {
            if (_export is { Closed.IsCancellationRequested: false } export)
            {
                (refusal, message) = (0, "");
                return export;
            }
            refusal = NbdProtocol.RepErrUnknown;
            message = _primary is null
                ? $"node {nodeName} is not the primary, and no primary is known yet; try again shortly"
                : _primary == nodeName
                    ? $"node {nodeName} is becoming the primary; try again shortly"
                    : _primaryNbd is null
                        ? $"node {nodeName} is not the primary; the primary is {_primary}, which serves no NBD export"
                        : $"node {nodeName} is not the primary; the primary {_primary} serves NBD at {_primaryNbd} (nbd://{_primaryNbd})";
            return null;
        }
    }
}
