# PID 1 of the test VM once its root is in place (run by the host's /bin/sh): runs the command
# tests/vm/run.sh wrote, makes sure an exit status goes back, and powers off.
/bin/sh /run/vm/guest.sh < /dev/null > /dev/console 2>&1
[ -f /run/vm/rc ] || echo 125 > /run/vm/rc
sync
umount /run/vm
echo 1 > /proc/sys/kernel/printk
# Power off now (reboot(2) as PID 1); the sysrq trigger if that should fail.
busybox poweroff -f
echo o > /proc/sysrq-trigger
while :; do :; done
