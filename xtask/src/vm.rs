//! Boots the lab guest in QEMU and waits for it to power off.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::ValueEnum;

use crate::command;

/// Guest memory. The "scale" scenario runs 5,000 extra processes, which take
/// about 115 KiB each (MemAvailable before and after, in that scenario), and the
/// kernel's default threads-max is one task per 128 KiB of memory (8,192 at 1 GiB).
const GUEST_MEMORY_MIB: &str = "2048";

/// QEMU accelerator choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Accel {
    /// KVM when /dev/kvm is usable and the CPU has hardware virtualization, else TCG.
    Auto,
    Kvm,
    Tcg,
}

pub struct VmConfig<'a> {
    pub kernel_image: &'a Path,
    pub initrd: &'a Path,
    /// Kernel command line parameters added after the lab's fixed ones.
    pub extra_cmdline: String,
    pub accel: Accel,
    /// Log of the guest console (ttyS0).
    pub console_log: PathBuf,
    /// Data channel file (ttyS1), where the guest writes the scenario results.
    pub data_file: PathBuf,
    /// Attach the console to this terminal and wait without a time limit.
    pub interactive: bool,
    /// Print only emergency kernel messages on the console, for a program that
    /// draws on it. The kernel log keeps every message.
    pub quiet_console: bool,
    pub timeout: Duration,
}

/// Outcome of one VM run.
pub struct VmRun {
    pub accel: &'static str,
    /// Seconds from starting QEMU to the first line the guest's /init writes.
    pub boot_secs: Option<f64>,
    pub total_secs: f64,
    pub timed_out: bool,
}

/// Starts QEMU and waits until it exits or `config.timeout` passes, in which case
/// QEMU is killed. `on_data_line` receives each complete line of the data channel
/// while the guest runs, for progress messages.
pub fn boot(config: &VmConfig, mut on_data_line: impl FnMut(&str)) -> Result<VmRun> {
    let accel = resolve_accel(config.accel);
    // Truncate the data file so a line from an earlier run cannot count as progress.
    File::create(&config.data_file)
        .with_context(|| format!("failed to create {}", config.data_file.display()))?;

    let mut qemu = qemu_command(config, accel);
    println!("lab: booting the guest with -accel {accel}");
    let started = Instant::now();
    let mut child = qemu
        .spawn()
        .with_context(|| format!("failed to start `{}`", command::display(&qemu)))?;

    let mut data = DataTail::open(&config.data_file)?;
    let mut boot_secs = None;
    loop {
        if let Some(status) = child.try_wait()? {
            data.read_lines(&mut on_data_line)?;
            if !status.success() {
                println!("lab: QEMU exited with {status}");
            }
            return Ok(VmRun {
                accel,
                boot_secs,
                total_secs: started.elapsed().as_secs_f64(),
                timed_out: false,
            });
        }

        let read_any = data.read_lines(&mut on_data_line)?;
        if read_any && boot_secs.is_none() {
            boot_secs = Some(started.elapsed().as_secs_f64());
        }

        if !config.interactive && started.elapsed() > config.timeout {
            child.kill().ok();
            child.wait().ok();
            println!(
                "lab: QEMU ran longer than {} s and was killed; see {}",
                config.timeout.as_secs(),
                config.console_log.display()
            );
            return Ok(VmRun {
                accel,
                boot_secs,
                total_secs: started.elapsed().as_secs_f64(),
                timed_out: true,
            });
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn qemu_command(config: &VmConfig, accel: &str) -> Command {
    // pr_debug on for the transition code makes the kernel log why each task cannot
    // switch ("... has an unreliable stack", "... is sleeping on function ..."), and
    // loglevel=8 lets these KERN_DEBUG lines reach the console log as well as dmesg.
    let loglevel = if config.quiet_console { 1 } else { 8 };
    let cmdline = format!(
        "console=ttyS0 loglevel={loglevel} panic=-1 log_buf_len=4M \
         dyndbg=\"file kernel/livepatch/transition.c +p\" {}",
        config.extra_cmdline
    );
    let console = if config.interactive {
        format!(
            "stdio,id=console,signal=off,logfile={}",
            config.console_log.display()
        )
    } else {
        format!("file,id=console,path={}", config.console_log.display())
    };

    let mut qemu = Command::new("qemu-system-x86_64");
    qemu.args(["-accel", accel, "-m", GUEST_MEMORY_MIB, "-smp", "2"])
        .args([
            "-nographic",
            "-no-reboot",
            "-monitor",
            "none",
            "-nic",
            "none",
        ])
        .args(["-chardev", &console, "-serial", "chardev:console"])
        .arg("-chardev")
        .arg(format!("file,id=data,path={}", config.data_file.display()))
        .args(["-serial", "chardev:data"])
        .arg("-kernel")
        .arg(config.kernel_image)
        .arg("-initrd")
        .arg(config.initrd)
        .arg("-append")
        .arg(cmdline);
    if !config.interactive {
        qemu.stdin(Stdio::null());
    }
    qemu
}

/// Picks the accelerator for `Accel::Auto`. An openable /dev/kvm alone is not enough:
/// on a host without the vmx or svm CPU flag (a VM without nested virtualization),
/// KVM can create a guest that then never runs.
fn resolve_accel(accel: Accel) -> &'static str {
    match accel {
        Accel::Kvm => "kvm",
        Accel::Tcg => "tcg",
        Accel::Auto => {
            let kvm_opens = OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/kvm")
                .is_ok();
            let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
            let has_virtualization = cpuinfo
                .lines()
                .filter(|line| line.starts_with("flags"))
                .any(|line| {
                    line.split_whitespace()
                        .any(|flag| flag == "vmx" || flag == "svm")
                });
            if kvm_opens && has_virtualization {
                "kvm"
            } else {
                "tcg"
            }
        }
    }
}

/// Incremental reader of the data channel file, yielding complete lines.
struct DataTail {
    file: File,
    pending: Vec<u8>,
}

impl DataTail {
    fn open(path: &Path) -> Result<Self> {
        let file =
            File::open(path).with_context(|| format!("failed to open {}", path.display()))?;
        Ok(Self {
            file,
            pending: Vec::new(),
        })
    }

    /// Passes each new complete line to `on_line` and returns whether any bytes were read.
    fn read_lines(&mut self, on_line: &mut impl FnMut(&str)) -> Result<bool> {
        let before = self.pending.len();
        self.file.read_to_end(&mut self.pending)?;
        let read_any = self.pending.len() > before;
        while let Some(end) = self.pending.iter().position(|&byte| byte == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            on_line(String::from_utf8_lossy(&line).trim_end());
        }
        Ok(read_any)
    }
}
